"""The command layer: one thin module per ``ucat`` subcommand.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Flags, help texts and the
mapping from flags to library parameters live here and nowhere else; the library below raises
errors that name its parameters, and :mod:`ucat.cli` turns them into one line.
"""

# name -> (module, one-line help); modules are imported only when their command runs, so that
# ``ucat --help`` does not pay for torch and open_clip (about 2 s on the development CPU).
COMMANDS = {
    "demo": ("ucat.commands.demo", "the whole story offline: attack, fine-tune TeCoA and UCAT, compare (the main job)"),
    "eval": ("ucat.commands.eval", "clean/robust accuracy, calibration and uncertainty of a CLIP under attack"),
    "train": ("ucat.commands.train", "adversarial fine-tuning (ucat, tecoa, pmg-aft, fare, tga-zsr, clean)"),
    "data": ("ucat.commands.data", "list datasets and check that they are where ucat expects them"),
    "world": ("ucat.commands.world", "the procedural image world: render samples, pretrain its tiny CLIP"),
    "export": ("ucat.commands.export", "a trained model in the open_clip Hugging Face layout, with a model card"),
    "models": ("ucat.commands.models", "list the architectures and shipped models ucat can load"),
}
