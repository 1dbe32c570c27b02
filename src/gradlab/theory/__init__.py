"""The stand-alone exact-theory experiments: high-dimensional geometry against its closed forms, Pascanu et al.'s
cliff."""
