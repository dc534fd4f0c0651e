using System.Globalization;
using System.Text.Json;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>MetricsLog: CSV and JSONL round-trip every field, lines are flushed per epoch, a cut-short line is survived.</summary>
public sealed class MetricsLogProperties : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("metricslog-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string PathFor(string ext) => Path.Combine(dir, Guid.NewGuid().ToString("N") + ext);

    private static readonly EpochMetrics Sample = new(3, 0.5, 0.875, null, 0.9, null, 5, 1e-3, null, 0, 469, 60000, 12.25);

    // Round-trip is exact: doubles are written "R" and parsed back; NaN, infinities, nulls and -0 survive.
    [Property(MaxTest = 40)]
    public Property Write_then_read_returns_the_same_history() =>
        Prop.ForAll(Gens.AnyHistory.ToArbitrary(), Gen.Elements(".csv", ".jsonl", ".CSV").ToArbitrary(), (h, ext) =>
        {
            string path = PathFor(ext);
            MetricsLog.Write(path, h);
            History back = MetricsLog.Read(path);
            return (back.Epochs.Count == h.Epochs.Count && back.Epochs.Zip(h.Epochs).All(p => Same(p.First, p.Second)))
                .Label($"{ext}: wrote {h.Epochs.Count} epochs, read {back.Epochs.Count}; file:\n{File.ReadAllText(path)}");
        });

    // Each epoch is on disk when Append returns, while the log is still open: a crash keeps it.
    [Property(MaxTest = 20)]
    public Property Each_append_is_readable_before_the_log_is_closed() =>
        Prop.ForAll(Gens.AnyHistory.ToArbitrary(), Gen.Elements(".csv", ".jsonl").ToArbitrary(), (h, ext) =>
        {
            string path = PathFor(ext);
            using MetricsLog log = MetricsLog.Open(path);
            bool ok = MetricsLog.Read(path).Epochs.Count == 0;
            for (int i = 0; i < h.Epochs.Count; i++)
            {
                log.Append(h.Epochs[i]);
                History now = MetricsLog.Read(path);
                ok &= now.Epochs.Count == i + 1 && Same(now.Epochs[i], h.Epochs[i]);
            }

            return ok.Label($"{ext}, {h.Epochs.Count} epochs");
        });

    [Theory]
    [InlineData(".csv")]
    [InlineData(".jsonl")]
    public void A_line_cut_short_by_a_crash_is_skipped_and_dropped_on_resume(string ext)
    {
        string path = PathFor(ext);
        using (MetricsLog log = MetricsLog.Open(path))
        {
            log.Append(Sample);
            log.Append(Sample with { Epoch = 4 });
        }

        string full = File.ReadAllText(path);
        File.AppendAllText(path, ext == ".csv" ? "5,0.4,0.8" : "{\"epoch\":5,\"train_lo");
        Assert.Equal([3, 4], MetricsLog.Read(path).Epochs.Select(m => m.Epoch));

        using (MetricsLog log = MetricsLog.Open(path, append: true))
        {
            log.Append(Sample with { Epoch = 5 });
        }

        Assert.Equal([3, 4, 5], MetricsLog.Read(path).Epochs.Select(m => m.Epoch));
        Assert.StartsWith(full, File.ReadAllText(path));
    }

    [Fact]
    public void Csv_has_a_header_empty_cells_for_nulls_and_invariant_numbers()
    {
        string path = PathFor(".csv");
        CultureInfo saved = CultureInfo.CurrentCulture;
        try
        {
            // A decimal comma culture must not leak into the file.
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
            MetricsLog.Write(path, History.Empty.Add(Sample));
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
        }

        string[] lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        Assert.Equal("epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_topk,top_k,learning_rate,loss_scale,skipped_steps,steps,samples,seconds,averaged_val_loss,averaged_val_accuracy", lines[0]);
        Assert.Equal("3,0.5,0.875,,0.9,,5,0.001,,0,469,60000,12.25,,", lines[1]);
    }

    [Fact]
    public void Jsonl_has_one_object_per_epoch_with_every_key()
    {
        string path = PathFor(".jsonl");
        MetricsLog.Write(path, History.Empty.Add(Sample).Add(Sample with { Epoch = 4, TrainLoss = double.NaN }));
        string[] lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        using JsonDocument d = JsonDocument.Parse(lines[0]);
        Assert.Equal(MetricsLog.Columns, d.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(JsonValueKind.Null, d.RootElement.GetProperty("val_loss").ValueKind);
        Assert.Equal(0.875, d.RootElement.GetProperty("train_accuracy").GetDouble());
        using JsonDocument d2 = JsonDocument.Parse(lines[1]);
        Assert.Equal("NaN", d2.RootElement.GetProperty("train_loss").GetString());
    }

    [Fact]
    public void Reading_a_csv_with_reordered_and_missing_optional_columns_works()
    {
        string path = PathFor(".csv");
        File.WriteAllText(path, "train_accuracy,epoch,train_loss,val_loss\n0.5,1,2.25,\n0.75,2,1.5,1.75\n");
        History h = MetricsLog.Read(path);
        Assert.Equal(2, h.Epochs.Count);
        Assert.Equal(new EpochMetrics(2, 1.5, 0.75, 1.75, null, null, 0, 0, null, 0, 0, 0, 0), h.Epochs[1]);
        Assert.Null(h.Epochs[0].ValLoss);
    }

    [Theory]
    [InlineData(".csv", "epoch,train_loss,train_accuracy\n1,0.5,0.5\n2,zero,0.5\n3,0.5,0.5\n", "line 3")]
    [InlineData(".csv", "epoch,train_loss,train_accuracy\n1,0.5\n2,0.5,0.5\n", "line 2")]
    [InlineData(".csv", "loss,accuracy\n1,0.5\n", "train_loss")]
    [InlineData(".jsonl", "{\"epoch\":1,\"train_loss\":0.5,\"train_accuracy\":0.5}\n[1,2]\n{\"epoch\":1,\"train_loss\":0.5,\"train_accuracy\":0.5}\n", "line 2")]
    [InlineData(".jsonl", "{\"epoch\":1,\"train_accuracy\":0.5}\n\n", "train_loss")]
    public void A_corrupt_line_in_the_middle_is_a_format_error_naming_file_and_line(string ext, string text, string named)
    {
        string path = PathFor(ext);
        File.WriteAllText(path, text);
        FormatException e = Assert.Throws<FormatException>(() => MetricsLog.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void An_unknown_extension_is_refused_by_name()
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => MetricsLog.Open(PathFor(".txt")));
        Assert.Contains(".txt", e.Message);
        Assert.Contains(".csv", e.Message);
    }

    // Record equality compares doubles with Equals, so NaN equals NaN; -0.0 must keep its sign bit.
    private static bool Same(EpochMetrics a, EpochMetrics b) =>
        a == b && BitConverter.DoubleToInt64Bits(a.TrainLoss) == BitConverter.DoubleToInt64Bits(b.TrainLoss);
}
