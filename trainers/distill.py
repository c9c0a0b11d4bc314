"""Ensemble distillation: `python -m trainers.distill --config X.yaml --teachers DIR,DIR`.

The same recipe as pretraining (trainers.recipe.TrainingRecipe) plus frozen teachers
(trainers.teachers) and the loss in trainers.losses.
"""

import sys

from trainers._cli import run_recipe_cli

if __name__ == "__main__":
    sys.exit(run_recipe_cli(sys.argv[1:], distill=True))
