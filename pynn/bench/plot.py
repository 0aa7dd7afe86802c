"""Bar charts of the dense layer step and of the training epochs (needs matplotlib)."""


def plot(result, path):
    """Bar charts of the dense layer step and of the training epochs, saved to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if result.get("dense"):
        panels.append("dense")
    if result.get("train"):
        panels.append("train")
    if not panels:
        raise ValueError("plot: nothing to plot (run --dense or --train)")
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "dense":
            rows = [r for r in result["dense"] if r["status"] == "ok"]
            groups = sorted({r["batch"] for r in rows})
            series = list(dict.fromkeys(r["backend"] for r in rows))
            value = {(r["batch"], r["backend"]): r["step_us"] for r in rows}
            ax.set_title("Dense 784->256 ReLU forward+backward")
            ax.set_ylabel("µs per step (log)")
            xlabel = "batch"
        else:
            opt = result["train"][0]["optimizer"]
            rows = [r for r in result["train"]
                    if r["status"] == "ok" and r["optimizer"] == opt]
            groups = sorted({r["batch"] for r in rows})
            series = list(dict.fromkeys(r["contestant"] for r in rows))
            value = {(r["batch"], r["contestant"]): r["median_s"] for r in rows}
            ax.set_title(f"One training epoch, {opt}")
            ax.set_ylabel("seconds per epoch (log)")
            xlabel = "batch"
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            xs = [g + i * width for g in range(len(groups))]
            ax.bar(xs, [value.get((g, s), 0) or 0 for g in groups], width, label=s)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
        ax.set_xticklabels([str(g) for g in groups])
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
