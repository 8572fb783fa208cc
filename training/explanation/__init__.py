"""Why a client's risk is what it is: the factor attribution and the actions it suggests."""
