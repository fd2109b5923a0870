"""Record-level hospital data (HES-format APC episodes, outpatient and A&E attendances): the validating contract
(:mod:`.contract`) and the indicators computed from it (:mod:`.indicators`)."""
