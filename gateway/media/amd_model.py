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
from dataclasses import dataclass
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
        data = json.loads(text)
        if tuple(data["features"]) != NAMES:
            raise ValueError(f"the model was fitted on other features: {data['features']}")
        return cls(
            mean=np.array(data["mean"]),
            scale=np.array(data["scale"]),
            hidden_weights=np.array(data["hidden_weights"]),
            hidden_bias=np.array(data["hidden_bias"]),
            output_weights=np.array(data["output_weights"]),
            output_bias=float(data["output_bias"]),
            human_below=float(data["human_below"]),
            machine_above=float(data["machine_above"]),
        )


def load_model(path: Path = MODEL_PATH) -> GreetingModel:
    return GreetingModel.from_json(path.read_text())
