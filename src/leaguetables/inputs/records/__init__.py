"""Record-level hospital data (HES-format APC episodes, outpatient and A&E attendances): the validating contract
(:mod:`.contract`), the indicators computed from it (:mod:`.indicators`) and the synthetic national generator
(:mod:`.generate`, over the real geography of :mod:`.geography`, with the known model of :mod:`.model`)."""
