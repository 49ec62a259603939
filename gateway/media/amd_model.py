"""The learned part of answering machine detection: how likely the greeting so far is a
machine's, from its features (amd_features.py).

A small neural network (one tanh hidden layer, a logistic output) over the standardised
features; bench/amd_train.py fits it on the generated corpus's tuning seeds and writes its
weights, and the thresholds at which a verdict is sure enough to give before the deadline,
to ``amd_model.json`` beside this module. Loaded once, at import; a prediction is two small
matrix products.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from gateway.media.amd_features import NAMES

MODEL_PATH = Path(__file__).with_name("amd_model.json")
CHECK_MS, FIRST_CHECK_MS = 100, 300  # how often, and from when, the model is asked


@dataclass(frozen=True)
class GreetingModel:
    mean: np.ndarray  # per feature, for standardising
    scale: np.ndarray
    hidden_weights: np.ndarray  # (features, hidden)
    hidden_bias: np.ndarray
    output_weights: np.ndarray  # (hidden,)
    output_bias: float
    human_below: float  # a probability of a machine under this is HUMAN before the deadline
    machine_above: float  # ... over this MACHINE

    def p_machine(self, features: np.ndarray) -> float:
        z = (features - self.mean) / self.scale
        score = float(np.tanh(z @ self.hidden_weights + self.hidden_bias) @ self.output_weights)
        return 1 / (1 + math.exp(-min(max(score + self.output_bias, -30.0), 30.0)))

    def to_json(self) -> str:
        data = {
            "features": list(NAMES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "hidden_weights": self.hidden_weights.tolist(),
            "hidden_bias": self.hidden_bias.tolist(),
            "output_weights": self.output_weights.tolist(),
            "output_bias": self.output_bias,
            "human_below": self.human_below,
            "machine_above": self.machine_above,
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> GreetingModel:
        """The model ``to_json`` wrote; a ValueError, at import rather than mid-call on the
        event loop, if it does not fit today's features or is not a model at all."""
        data = json.loads(text)
        missing = sorted({"features", *(f.name for f in fields(cls))} - data.keys())
        if missing:
            raise ValueError(f"not a greeting model: no {', '.join(missing)}")
        if tuple(data["features"]) != NAMES:
            raise ValueError(f"the model was fitted on other features: {data['features']}")
        model = cls(
            mean=np.array(data["mean"], dtype=float),
            scale=np.array(data["scale"], dtype=float),
            hidden_weights=np.array(data["hidden_weights"], dtype=float),
            hidden_bias=np.array(data["hidden_bias"], dtype=float),
            output_weights=np.array(data["output_weights"], dtype=float),
            output_bias=float(data["output_bias"]),
            human_below=float(data["human_below"]),
            machine_above=float(data["machine_above"]),
        )
        model._check()
        return model

    def _check(self) -> None:
        features, hidden = len(NAMES), self.hidden_bias.size
        shapes = {
            "mean": (self.mean.shape, (features,)),
            "scale": (self.scale.shape, (features,)),
            "hidden_weights": (self.hidden_weights.shape, (features, hidden)),
            "hidden_bias": (self.hidden_bias.shape, (hidden,)),
            "output_weights": (self.output_weights.shape, (hidden,)),
        }
        for name, (shape, wanted) in shapes.items():
            if shape != wanted:
                raise ValueError(f"the model's {name} is {shape}, not {wanted}")
        arrays = (self.mean, self.scale, self.hidden_weights, self.hidden_bias, self.output_weights)
        numbers = np.array([self.output_bias, self.human_below, self.machine_above])
        if not all(np.isfinite(a).all() for a in (*arrays, numbers)):
            raise ValueError("the model has weights that are not finite numbers")
        if not (self.scale > 0).all():
            raise ValueError("the model's scale must be positive (it divides the features)")
        if not 0 <= self.human_below <= 0.5 <= self.machine_above <= 1:
            raise ValueError(
                f"the model's thresholds must be 0 <= human_below ({self.human_below}) <= 0.5 "
                f"<= machine_above ({self.machine_above}) <= 1"
            )


def load_model(path: Path = MODEL_PATH) -> GreetingModel:
    return GreetingModel.from_json(path.read_text())
