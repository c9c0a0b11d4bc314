"""Teacher pretraining: `python -m trainers.pretrain --config X.yaml [--resume DIR]`.

The recipe itself (setup, train, evaluate, save) is trainers.recipe.TrainingRecipe.
"""

import sys

from trainers._cli import run_recipe_cli

if __name__ == "__main__":
    sys.exit(run_recipe_cli(sys.argv[1:], distill=False))
