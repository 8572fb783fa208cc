"""FHIR R4 in and out (docs/fhir.md): a Bundle of one patient's survey scores read as an
episode, and the prediction written as a RiskAssessment.

Every resource is checked by the fhir.resources R4B models (the package's default models
are R5, whose RiskAssessment differs), and then by the checks those models leave out:
value-set bindings, invariants, and the rules of this service (which codes, which ranges,
one patient). Bad input is reported as FhirInputError with every issue found, each naming
its FHIRPath, so the caller can fix a Bundle in one round trip.

Scale: probabilityDecimal is a probability from 0 to 1, not a percentage. The R4 text says
decimals are percentages, but the score, its thresholds and the rest of this API are 0-1,
and a second scale at one edge invites a factor-100 error; invariant ras-2 (<= 100) holds
either way.

The package, by section: codes (code systems, measures, issue types), reading (a Bundle
in), writing (resources out). The routes are service.api.fhir.
"""
