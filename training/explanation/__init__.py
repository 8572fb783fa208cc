"""Why a client's risk is what it is, in one place for training and serving alike.

- groups.py: the factor groups (which features are explained together), the factor codes,
  `Factor`;
- reference.py: the reference client (computed in training, stored in the model's
  metadata) and its occlusion plan;
- attribution.py: the method (occlusion against the reference client), its compiled
  kernels, `contributions` and `explain`;
- wording.py: a factor's words, with the client's own numbers;
- actions.py: the next-session actions for the factors that raise the risk.

training/ never imports service/; the service scores with these modules
(service.scoring.score), and nothing here knows about HTTP.
"""
