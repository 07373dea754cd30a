"""The procedural image world: scenes and their captions, the tasks, and the pretraining of the
shipped ``ucat-world`` CLIP.

* :mod:`ucat.world.scenes`: drawing scenes from a seed, captions, the pretraining stream;
* :mod:`ucat.world.tasks`: the zero-shot tasks over the scenes (registered as datasets by
  :mod:`ucat.data.catalog`), the suite;
* :mod:`ucat.world.pretrain`: contrastive pretraining of the tiny CLIP (``ucat world pretrain``).
"""
