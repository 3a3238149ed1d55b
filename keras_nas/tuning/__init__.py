"""How a search runs: the tuner and what one trial needs.

- `NASTuner` (`tuner.py`): the KerasTuner tuner of a keras-nas search.
- `training_state`: a compiled model's optimizer and metric state made before its step is
  traced; `trial_memory`: what a trial leaves in memory; `trial_checkpoint`: a trial's
  best-epoch weights.
- `budget`: the wall-clock budget; `pruning`: successive halving; `schedules`: the learning
  rate schedule every candidate trains with; `final_model`: the model a search returns;
  `augmentation`: the shifted images its retraining trains on.
- `records`: a trial as a dict and `summary.json`; `progress`: the trial table.
"""
