using IlgpuTrain.Training;
using SkiaSharp;

namespace IlgpuTrain.Properties.Training;

/// <summary>Plots: PNGs exist with the PNG signature and the requested size, are not blank, and show the data lines.</summary>
public sealed class PlotsProperties : IDisposable
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private readonly string dir = Directory.CreateTempSubdirectory("plots-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Property(MaxTest = 6)]
    public Property Curves_are_a_png_of_the_requested_size_with_lines_drawn() =>
        Prop.ForAll(Gens.PlausibleHistory.ToArbitrary(), Gen.Elements((640, 360), (1200, 480), (801, 333)).ToArbitrary(), (h, size) =>
        {
            string path = Path.Combine(dir, "sub", "curves.png");
            Plots.SaveCurves(h, path, "fashion-mnist mlp", size.Item1, size.Item2);
            return Check(path, size.Item1, size.Item2, expectLines: true);
        });

    [Fact]
    public void Comparison_is_a_png_with_one_line_per_run()
    {
        var runs = new Dictionary<string, History>
        {
            ["sgd"] = Gens.Curves(5, i => 2.0 - (0.2 * i), i => 2.1 - (0.2 * i)),
            ["momentum"] = Gens.Curves(5, i => 1.5 - (0.2 * i), i => 1.6 - (0.2 * i)),
            ["adam"] = Gens.Curves(4, i => 1.0 / (i + 1), i => 1.2 / (i + 1)),
            ["adamw"] = Gens.Curves(5, i => 0.9 / (i + 1), _ => null),
        };
        string path = Path.Combine(dir, "compare.png");
        Plots.SaveComparison(runs, path, "compare optimizers");
        Assert.True(Check(path, Plots.DefaultWidth, Plots.DefaultHeight, expectLines: true), "comparison PNG");
        using SKBitmap bmp = SKBitmap.Decode(path);
        int distinctHues = Colored(bmp).Select(c => (c.Red / 64, c.Green / 64, c.Blue / 64)).Distinct().Count();
        Assert.True(distinctHues >= 4, $"expected at least 4 line colours, found {distinctHues}");
    }

    [Fact]
    public void Empty_and_diverged_histories_still_give_a_valid_png()
    {
        string empty = Path.Combine(dir, "empty.png");
        Plots.SaveCurves(History.Empty, empty, "nothing yet", 400, 300);
        Assert.True(Check(empty, 400, 300, expectLines: false), "empty history PNG");

        string diverged = Path.Combine(dir, "diverged.png");
        Plots.SaveCurves(Gens.Curves(6, i => i < 4 ? 1.0 / (i + 1) : double.NaN, i => i == 5 ? double.PositiveInfinity : 1.0), diverged, "nan", 500, 300);
        Assert.True(Check(diverged, 500, 300, expectLines: true), "diverged history PNG");
    }

    // PNG: signature, IHDR width and height (big-endian at bytes 16 and 20); not blank; with data,
    // some saturated (line) pixels in each panel, which axes, grid and text (greys) never have.
    private static bool Check(string path, int width, int height, bool expectLines)
    {
        byte[] bytes = File.ReadAllBytes(path);
        bool signature = bytes.AsSpan(0, 8).SequenceEqual(PngSignature);
        int w = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16));
        int h = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20));
        using SKBitmap bmp = SKBitmap.Decode(path);
        SKColor background = bmp.GetPixel(0, 0);
        int differing = 0;
        for (int y = 0; y < bmp.Height; y += 2)
        {
            for (int x = 0; x < bmp.Width; x += 2)
            {
                differing += bmp.GetPixel(x, y) != background ? 1 : 0;
            }
        }

        int half = bmp.Width / 2;
        int coloredLeft = Colored(bmp, 0, half).Count();
        int coloredRight = Colored(bmp, half, bmp.Width).Count();
        return signature && w == width && h == height && bmp.Width == width && bmp.Height == height
            && differing > 100 && (!expectLines || (coloredLeft > 50 && coloredRight > 50)) && !File.Exists(path + ".tmp");
    }

    // Saturated pixels in columns [x0, x1) (the whole width by default).
    private static IEnumerable<SKColor> Colored(SKBitmap bmp, int x0 = 0, int x1 = int.MaxValue)
    {
        for (int y = 0; y < bmp.Height; y++)
        {
            for (int x = x0; x < Math.Min(x1, bmp.Width); x++)
            {
                SKColor c = bmp.GetPixel(x, y);
                int max = Math.Max(c.Red, Math.Max(c.Green, c.Blue));
                int min = Math.Min(c.Red, Math.Min(c.Green, c.Blue));
                if (max - min > 80)
                {
                    yield return c;
                }
            }
        }
    }
}
