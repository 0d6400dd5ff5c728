"""Evaluation: per-structure Dice, HD95, ASSD and volume difference (MONAI metrics), reports, ablation."""
