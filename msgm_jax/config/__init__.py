"""From a config file to typed objects: presets, checks, builders and run identity.

  presets.py        small presets that configs/*.py compose into one ml_collections ConfigDict
  files.py          loading a config file (a path or a shipped config), checking --config overrides
  validate.py       start-up checks of every field (rule tables per section, cross-field checks)
  builders.py       config sections -> typed objects (SDE, sampler, step config, adjustment)
  agreement.py      does a config agree with the run it is applied to; names for outputs

Below this part nothing takes a whole ConfigDict: the parts under it read their own section.
"""
