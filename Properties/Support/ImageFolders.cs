using StbImageWriteSharp;

namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Writes small image folders for the image-folder tests: PNG (lossless, so a decoded pixel is the
/// byte written) and JPEG files from byte arrays (H, W, C interleaved), and a two-class set of red
/// and blue squares that a small CNN tells apart.
/// </summary>
public static class ImageFolders
{
    /// <summary>Writes an 8-bit PNG.</summary>
    /// <param name="path">The file (its folder is created).</param>
    /// <param name="height">Rows.</param>
    /// <param name="width">Columns.</param>
    /// <param name="channels">1 (gray), 3 (RGB) or 4 (RGBA).</param>
    /// <param name="pixels">height × width × channels bytes.</param>
    public static void WritePng(string path, int height, int width, int channels, byte[] pixels) =>
        Write(path, s => new ImageWriter().WritePng(pixels, width, height, Components(channels), s));

    /// <summary>Writes a JPEG of quality 90.</summary>
    /// <param name="path">The file (its folder is created).</param>
    /// <param name="height">Rows.</param>
    /// <param name="width">Columns.</param>
    /// <param name="pixels">height × width × 3 bytes.</param>
    public static void WriteJpg(string path, int height, int width, byte[] pixels) =>
        Write(path, s => new ImageWriter().WriteJpg(pixels, width, height, ColorComponents.RedGreenBlue, s, 90));

    /// <summary>An RGB image whose every pixel is <paramref name="rgb"/>.</summary>
    /// <param name="height">Rows.</param>
    /// <param name="width">Columns.</param>
    /// <param name="rgb">The color.</param>
    /// <returns>The bytes.</returns>
    public static byte[] Solid(int height, int width, (byte R, byte G, byte B) rgb)
    {
        var p = new byte[height * width * 3];
        for (int i = 0; i < height * width; i++)
            (p[3 * i], p[3 * i + 1], p[3 * i + 2]) = rgb;
        return p;
    }

    /// <summary>
    /// A two-class folder under <paramref name="root"/>: blue/ and red/, <paramref name="perClass"/>
    /// PNGs each of a square of that color (side 6 to 10, placed at random) on a gray noisy
    /// background; sizes alternate between <paramref name="size"/> × (size + 4) and (size + 4) ×
    /// size, so a run needs a resize.
    /// </summary>
    /// <param name="root">The folder (created).</param>
    /// <param name="perClass">Images per class.</param>
    /// <param name="size">The shorter side.</param>
    /// <param name="seed">Seed of positions and noise.</param>
    public static void Squares(string root, int perClass, int size, int seed)
    {
        var rng = new Random(seed);
        foreach (var (name, color) in new[] { ("blue", ((byte)30, (byte)60, (byte)220)), ("red", ((byte)220, (byte)40, (byte)30)) })
        {
            for (int i = 0; i < perClass; i++)
            {
                int h = i % 2 == 0 ? size : size + 4, w = i % 2 == 0 ? size + 4 : size;
                var p = new byte[h * w * 3];
                for (int k = 0; k < p.Length; k++)
                    p[k] = (byte)(100 + rng.Next(40));
                int side = rng.Next(6, 11), top = rng.Next(0, h - side + 1), left = rng.Next(0, w - side + 1);
                for (int y = top; y < top + side; y++)
                {
                    for (int x = left; x < left + side; x++)
                        (p[(y * w + x) * 3], p[(y * w + x) * 3 + 1], p[(y * w + x) * 3 + 2]) = color;
                }

                WritePng(Path.Combine(root, name, $"{i:D3}.png"), h, w, 3, p);
            }
        }
    }

    private static ColorComponents Components(int channels) => channels switch
    {
        1 => ColorComponents.Grey,
        2 => ColorComponents.GreyAlpha,
        3 => ColorComponents.RedGreenBlue,
        4 => ColorComponents.RedGreenBlueAlpha,
        _ => throw new ArgumentOutOfRangeException(nameof(channels), channels, "1 to 4 channels"),
    };

    private static void Write(string path, Action<Stream> write)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var s = File.Create(path);
        write(s);
    }
}
