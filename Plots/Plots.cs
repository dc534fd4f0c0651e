// Training curves as PNG with ScottPlot: one figure, two panels side by side (loss left, accuracy
// right), rendered by SkiaSharp into an off-screen raster surface, so it needs no display.
// Text needs a font: SkiaSharp's NoDependencies native scans /usr/share/fonts without fontconfig;
// on a machine with no fonts at all the curves, axes and ticks still render and only the text is
// missing (Debian: apt-get install -y fonts-dejavu-core gives the labels back).
// Non-finite points (a diverged loss) and missing validation values are left out of a line rather
// than breaking the axis limits.
using ScottPlot;
using SkiaSharp;

namespace IlgpuTrain.Training;

/// <summary>Loss and accuracy curves of a <see cref="History"/>, optimizer comparisons and learning-rate range tests, saved as PNG.</summary>
public static class Plots
{
    /// <summary>Default figure width in pixels (two panels).</summary>
    public const int DefaultWidth = 1200;

    /// <summary>Default figure height in pixels.</summary>
    public const int DefaultHeight = 480;

    /// <summary>
    /// Saves one PNG with two panels: training and validation loss per epoch (left), training and
    /// validation accuracy per epoch (right), or, for a task without accuracy (regression,
    /// multi-label), the task's metrics (right). Validation lines appear when the history has them.
    /// </summary>
    /// <param name="history">The run's epochs.</param>
    /// <param name="pngPath">The file to write; its folder is created if missing.</param>
    /// <param name="title">The figure's title, shown above both panels.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    public static void SaveCurves(History history, string pngPath, string title, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(history);
        IReadOnlyList<EpochMetrics> e = history.Epochs;
        Plot loss = Panel($"{title}: loss", "loss");
        AddLine(loss, "train", e, m => m.TrainLoss);
        AddLine(loss, "validation", e, m => m.ValLoss);
        var own = e.SelectMany(m => m.Metrics?.Keys ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (own.Count > 0 && e.All(m => double.IsNaN(m.TrainAccuracy)))
        {
            // A task without accuracy (regression, multi-label): its own metrics on the right.
            Plot metrics = Panel($"{title}: metrics", "metric");
            foreach (string name in own)
                AddLine(metrics, name, e, m => m.Value(name));
            Save(pngPath, width, height, loss, metrics);
            return;
        }

        Plot acc = Panel($"{title}: accuracy", "accuracy");
        AddLine(acc, "train", e, m => m.TrainAccuracy);
        AddLine(acc, "validation", e, m => m.ValAccuracy);
        Save(pngPath, width, height, loss, acc);
    }

    /// <summary>
    /// Saves one PNG comparing runs (the compare-optimizers plot): validation accuracy per epoch
    /// (left) and validation loss per epoch (right), one line per run, labelled by its key. A run
    /// without validation metrics is drawn with its training metrics and labelled "(train)".
    /// </summary>
    /// <param name="runs">Run name (the optimizer) to its history.</param>
    /// <param name="pngPath">The file to write; its folder is created if missing.</param>
    /// <param name="title">The figure's title.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    public static void SaveComparison(IReadOnlyDictionary<string, History> runs, string pngPath, string title, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(runs);
        Plot acc = Panel($"{title}: validation accuracy", "accuracy");
        Plot loss = Panel($"{title}: validation loss", "loss");
        foreach ((string name, History h) in runs)
        {
            bool hasVal = h.Epochs.Any(m => m.ValLoss is not null || m.ValAccuracy is not null);
            string label = hasVal ? name : $"{name} (train)";
            AddLine(acc, label, h.Epochs, m => hasVal ? m.ValAccuracy : m.TrainAccuracy);
            AddLine(loss, label, h.Epochs, m => hasVal ? m.ValLoss : m.TrainLoss);
        }

        Save(pngPath, width, height, acc, loss);
    }

    /// <summary>
    /// Saves one PNG of a learning-rate range test: the loss (thin) and the smoothed loss (thick)
    /// against the learning rate on a log axis, with a vertical line at each suggestion.
    /// </summary>
    /// <param name="result">The range test.</param>
    /// <param name="pngPath">The file to write; its folder is created if missing.</param>
    /// <param name="title">The figure's title.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    public static void SaveLearningRateFinder(LearningRateFinderResult result, string pngPath, string title, int width = DefaultWidth / 2, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(result);
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("learning rate (log scale)");
        plot.YLabel("training loss");

        // ScottPlot has no log axis: plot log10(lr) and label the ticks 10^x.
        var points = result.Curve.Where(p => double.IsFinite(p.Loss) && double.IsFinite(p.SmoothedLoss) && p.LearningRate > 0).ToList();
        double[] x = [.. points.Select(p => Math.Log10(p.LearningRate))];
        if (x.Length > 0)
        {
            var raw = plot.Add.Scatter(x, [.. points.Select(p => p.Loss)]);
            raw.LegendText = "loss";
            raw.LineWidth = 1;
            raw.MarkerSize = 0;
            var smooth = plot.Add.Scatter(x, [.. points.Select(p => p.SmoothedLoss)]);
            smooth.LegendText = "smoothed loss";
            smooth.LineWidth = 2.5f;
            smooth.MarkerSize = 0;

            // As fastai's plot: the divergence tail would flatten the part that matters, so the
            // y axis stops at 1.5x the first smoothed loss.
            double lo = points.Min(p => Math.Min(p.Loss, p.SmoothedLoss)), hi = points.Max(p => Math.Max(p.Loss, p.SmoothedLoss));
            hi = Math.Min(hi, 1.5 * points[0].SmoothedLoss);
            if (hi > lo)
                plot.Axes.SetLimitsY(lo - (0.05 * (hi - lo)), hi);
        }

        foreach (var (label, lr) in new[] { ("steepest", result.Steepest), ("minimum/10", result.MinimumOverTen) })
        {
            if (lr is { } v && v > 0 && double.IsFinite(v))
            {
                var line = plot.Add.VerticalLine(Math.Log10(v));
                line.LegendText = $"{label} {v.ToString("0.##e+00", System.Globalization.CultureInfo.InvariantCulture)}";
                line.LinePattern = LinePattern.Dashed;
            }
        }

        var ticks = new ScottPlot.TickGenerators.NumericAutomatic
        {
            IntegerTicksOnly = true,
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            LabelFormatter = v => Math.Pow(10, v).ToString("0.#e+0", System.Globalization.CultureInfo.InvariantCulture),
        };
        plot.Axes.Bottom.TickGenerator = ticks;
        plot.ShowLegend();
        Save(pngPath, width, height, plot);
    }

    private static Plot Panel(string title, string yLabel)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel(yLabel);
        return plot;
    }

    private static void AddLine(Plot plot, string label, IReadOnlyList<EpochMetrics> epochs, Func<EpochMetrics, double?> value)
    {
        var xs = new List<double>();
        var ys = new List<double>();
        foreach (EpochMetrics m in epochs)
        {
            if (value(m) is double y && double.IsFinite(y))
            {
                xs.Add(m.Epoch);
                ys.Add(y);
            }
        }

        if (xs.Count == 0)
        {
            return;
        }

        var line = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
        line.LegendText = label;
        line.LineWidth = 2;
        line.MarkerSize = 6;
        plot.ShowLegend();
    }

    // ScottPlot clears the canvas before drawing a figure: clip to the panel so it clears only its own part.
    private static void RenderPanel(SKCanvas canvas, Plot plot, int x, int width, int height)
    {
        canvas.Save();
        canvas.ClipRect(new SKRect(x, 0, x + width, height));
        canvas.Translate(x, 0);
        plot.Render(canvas, width, height);
        canvas.Restore();
    }

    private static void Save(string pngPath, int width, int height, params Plot[] panels)
    {
        ArgumentNullException.ThrowIfNull(pngPath);
        if (width < panels.Length || height < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(width), $"Plots: the figure must be at least {panels.Length}x1 pixels, got {width}x{height}.");
        }

        string? dir = Path.GetDirectoryName(Path.GetFullPath(pngPath));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using SKSurface surface = SKSurface.Create(info)
            ?? throw new InvalidOperationException($"Plots: SkiaSharp could not create a {width}x{height} surface.");
        SKCanvas canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        for (int i = 0; i < panels.Length; i++)
        {
            int x0 = width * i / panels.Length, x1 = width * (i + 1) / panels.Length;
            RenderPanel(canvas, panels[i], x0, x1 - x0, height);
        }
        canvas.Flush();

        using SKImage image = surface.Snapshot();
        using SKData png = image.Encode(SKEncodedImageFormat.Png, 100);

        // Write beside the target, then rename: a reader never sees half a PNG.
        string tmp = pngPath + ".tmp";
        using (FileStream f = File.Create(tmp))
        {
            png.SaveTo(f);
        }

        File.Move(tmp, pngPath, overwrite: true);
    }
}
