"""Typed configs (pydantic), validated at the edge: `schema` holds the run model, `study` the study file's,
`load` reads YAML, applies `--set` overrides and turns validation errors into one line naming the key and the
closest valid key."""
