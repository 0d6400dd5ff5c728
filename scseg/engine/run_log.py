"""What a run writes as it goes: metrics.csv, curves.png and TensorBoard events."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from scseg.io.atomic import atomic_write_bytes


class RunLog:
    """Validation rows (epoch, loss, mean Dice, one Dice column per structure) and their plots.

    Args:
        run_dir: the run directory.
        structure_names: foreground structure names, one Dice column each.
        tensorboard: also write TensorBoard events under ``run_dir/tensorboard``.
    """

    def __init__(self, run_dir: Path, structure_names: list[str], tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.names = list(structure_names)
        self.columns = ["epoch", "train_loss", "mean_dice", *[f"dice_{n}" for n in self.names], "elapsed_min"]
        self.csv_path = self.run_dir / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def resume(self, up_to_epoch: int) -> None:
        """Reload earlier rows, dropping any written after ``up_to_epoch`` (a run killed later)."""
        if self.csv_path.is_file():
            with self.csv_path.open(newline="") as f:
                self.rows = [
                    {k: float(v) for k, v in row.items()}
                    for row in csv.DictReader(f)
                    if int(float(row["epoch"])) <= up_to_epoch
                ]
            self._write_csv()

    def log_train(self, epoch: int, loss: float, lr: float) -> None:
        if self._writer:
            self._writer.add_scalar("train/loss", loss, epoch)
            self._writer.add_scalar("train/lr", lr, epoch)

    def log_validation(
        self, epoch: int, train_loss: float, dice: dict[str, float], elapsed_min: float
    ) -> dict[str, float]:
        mean = sum(dice.values()) / len(dice)
        row = {"epoch": epoch, "train_loss": train_loss, "mean_dice": mean, "elapsed_min": elapsed_min}
        row |= {f"dice_{n}": dice[n] for n in self.names}
        self.rows.append(row)
        self._write_csv()
        self.plot()
        if self._writer:
            self._writer.add_scalar("val/mean_dice", mean, epoch)
            for n in self.names:
                self._writer.add_scalar(f"val/dice_{n}", dice[n], epoch)
            self._writer.flush()
        return row

    def _write_csv(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.columns)
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in row.items()})
        atomic_write_bytes(self.csv_path, lambda f: f.write(text.getvalue().encode()))

    def plot(self) -> None:
        """``curves.png``: training loss and validation Dice per structure over epochs."""
        if not self.rows:
            return
        # the Figure API (not pyplot): no global backend switch, so notebooks keep showing figures
        from matplotlib.figure import Figure

        epochs = [r["epoch"] for r in self.rows]
        fig = Figure(figsize=(11, 4))
        ax_loss, ax_dice = fig.subplots(1, 2)
        ax_loss.plot(epochs, [r["train_loss"] for r in self.rows], marker="o")
        ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
        for n in self.names:
            ax_dice.plot(epochs, [r[f"dice_{n}"] for r in self.rows], marker=".", label=n)
        ax_dice.plot(epochs, [r["mean_dice"] for r in self.rows], color="black", linewidth=2, label="mean")
        ax_dice.set(title="validation Dice", xlabel="epoch", ylabel="Dice", ylim=(0, 1))
        ax_dice.legend(loc="lower right", fontsize="small", ncol=2 if len(self.names) > 8 else 1)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        atomic_write_bytes(self.run_dir / "curves.png", lambda f: f.write(buffer.getvalue()))

    def close(self) -> None:
        if self._writer:
            self._writer.close()
