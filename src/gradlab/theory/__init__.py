"""The stand-alone exact-theory experiments: high-dimensional geometry against its closed forms, Pascanu et al.'s
cliff, and the curse of memory (one linear unit's variance and sensitivity against their closed forms)."""
