# Everything a fresh Debian machine needs, then the gateway or the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the run or the tests need: SIPp and baresip are the tests' SIP peers,
# espeak-ng and sox make speech for simulated phones, chromium runs the softphone page's tests.
SYSTEM_PACKAGES := sip-tester baresip-core openssl espeak-ng sox chromium

.PHONY: run test lint system-deps venv clean certs bench-sip bench-media eval-amd train-amd

run: venv certs
	$(BIN)/gateway serve

# One worker per core, each test file on one worker (the tests mostly wait on real sockets,
# timers and peers: two workers take the suite from about 8.5 to under 5 minutes here).
test: venv certs
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: venv
	$(BIN)/ruff check gateway trunks tests examples
	$(BIN)/ruff format --check gateway trunks tests examples

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

venv: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info

# A development CA and a server certificate for 127.0.0.1 and localhost (keys stay uncommitted).
certs: certs/server.pem

certs/server.pem:
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=voice-gateway dev CA" \
		-keyout certs/ca.key -out certs/ca.pem 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
		-keyout certs/server.key -out certs/server.csr 2>/dev/null
	printf "subjectAltName=IP:127.0.0.1,DNS:localhost\n" > certs/server.ext
	openssl x509 -req -in certs/server.csr -CA certs/ca.pem -CAkey certs/ca.key -CAcreateserial \
		-days 825 -extfile certs/server.ext -out certs/server.pem 2>/dev/null
	rm -f certs/server.csr certs/server.ext
	chmod 600 certs/*.key

# Benchmarks print tables; they are not tests. See bench/*.py for what each measures.
bench-sip: venv
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/sip_bench.py $(BENCH_ARGS)

# Media: calls relayed, mixed and conferenced by the media plane, against rtpengine's userspace
# relay (Debian rtpengine-daemon, installed here) and a bare uvloop relay.
bench-media: venv
	$(MAKE) --no-print-directory system-deps SYSTEM_PACKAGES=rtpengine-daemon
	$(BIN)/python bench/media_bench.py $(BENCH_ARGS)

# Answering machine detection on a generated corpus (bench/amd_eval.py; EVAL_ARGS e.g. --errors).
eval-amd: venv
	$(BIN)/python bench/amd_eval.py $(EVAL_ARGS)

# Fit the detector's classifier (gateway/media/amd_model.json) on tuning seeds 0-1399 only;
# TRAIN_ARGS="--corpus DIR" reads a corpus saved by bench/amd_corpus.py --out.
train-amd: venv
	$(BIN)/python bench/amd_train.py $(TRAIN_ARGS)
