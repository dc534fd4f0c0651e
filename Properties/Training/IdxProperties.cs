using System.IO.Compression;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/Idx.cs: round trips, and every malformed file is a clean InvalidDataException naming the file.</summary>
public class IdxProperties
{
    private static int MagicOf(IdxArray a) => a.Dimensions.Length == 1 ? Idx.LabelsMagic : Idx.ImagesMagic;

    // Only a clean InvalidDataException that names the file counts as a rejection.
    private static (bool Ok, string What) Rejects(Func<IdxArray> read, string file)
    {
        try
        {
            var a = read();
            return (false, $"accepted: {a.DimensionText}");
        }
        catch (InvalidDataException e) when (e.Message.StartsWith(file + ": ", StringComparison.Ordinal))
        {
            return (true, e.Message);
        }
        catch (Exception e)
        {
            return (false, $"{e.GetType().Name}: {e.Message}");
        }
    }

    [Property(MaxTest = 40)]
    public Property Written_files_read_back_equal_raw_and_gzip() =>
        Prop.ForAll(Gens.IdxArrays.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (a, gzip) =>
        {
            using var dir = new TempDir();
            string path = dir.File(gzip ? "a.gz" : "a");
            Idx.Write(path, a, gzip);
            var b = Idx.Read(path, MagicOf(a));
            return (b.Dimensions.SequenceEqual(a.Dimensions) && b.Data.SequenceEqual(a.Data)).Label($"{a.DimensionText}, gzip {gzip}");
        });

    [Fact]
    public void Every_prefix_of_a_file_is_rejected_cleanly()
    {
        var a = new IdxArray([3, 2, 4], Gens.RandomBytes(5, 24));
        using var dir = new TempDir();
        foreach (bool gzip in new[] { false, true })
        {
            string full = dir.File("full");
            Idx.Write(full, a, gzip);
            var bytes = File.ReadAllBytes(full);
            for (int len = 0; len < bytes.Length; len++)
            {
                string path = dir.File($"p{len}{(gzip ? ".gz" : string.Empty)}");
                File.WriteAllBytes(path, bytes[..len]);
                var (ok, what) = Rejects(() => Idx.ReadImages(path), Path.GetFileName(path));
                Assert.True(ok, $"gzip {gzip}, prefix {len} of {bytes.Length}: {what}");
            }
        }
    }

    [Fact]
    public void A_truncated_raw_file_says_how_many_bytes_it_has()
    {
        using var dir = new TempDir();
        string path = dir.File("train-images-idx3-ubyte");
        Idx.Write(path, new IdxArray([3, 28, 28], new byte[3 * 784]), gzip: false);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(16 + 1200)]);
        var e = Assert.Throws<InvalidDataException>(() => Idx.ReadImages(path));
        Assert.Equal("train-images-idx3-ubyte: header says 3 x 28 x 28 = 2352 bytes of pixels but the file has 1200 after the header; the file is truncated, download it again.", e.Message);
    }

    [Fact]
    public void Wrong_kind_corrupt_magic_other_types_absurd_and_trailing_bytes_are_rejected()
    {
        using var dir = new TempDir();
        string labels = dir.File("labels");
        Idx.Write(labels, new IdxArray([4], [1, 2, 3, 4]), gzip: false);
        Assert.Contains("expected an IDX images file", Assert.Throws<InvalidDataException>(() => Idx.ReadImages(labels)).Message);

        string Bytes(string name, params byte[] b)
        {
            string p = dir.File(name);
            File.WriteAllBytes(p, b);
            return p;
        }

        Assert.Contains("not an IDX file", Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Bytes("text", (byte)'h', (byte)'i', 0, 1, 0, 0, 0, 0))).Message);
        Assert.Contains("float32", Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Bytes("f32", 0, 0, 0x0D, 1, 0, 0, 0, 0))).Message);
        Assert.Contains("over the limit", Assert.Throws<InvalidDataException>(() => Idx.ReadImages(Bytes("absurd", 0, 0, 8, 3, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF))).Message);
        Assert.Contains("beyond 2^31", Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Bytes("negative", 0, 0, 8, 1, 0xFF, 0xFF, 0xFF, 0xFF))).Message);
        Assert.Contains("2 more byte(s) follow", Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Bytes("trailing", 0, 0, 8, 1, 0, 0, 0, 1, 7, 8, 9))).Message);

        // A gzip header followed by garbage.
        string gz = Bytes("garbage.gz", 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF);
        Assert.StartsWith("garbage.gz: ", Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(gz)).Message);
    }

    [Property(MaxTest = 200)]
    public Property Fuzzed_headers_either_read_or_are_rejected_cleanly() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), Gen.Choose(0, 40).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (seed, len, gzip) =>
        {
            using var dir = new TempDir();
            var body = Gens.RandomBytes(seed, len);
            // Half the cases keep a plausible magic so the dimension checks are reached.
            if (seed % 2 == 0 && len >= 4)
            {
                body[0] = 0;
                body[1] = 0;
                body[2] = 8;
                body[3] = (byte)(seed % 4 == 0 ? 1 : 3);
            }

            string path = dir.File("fuzz");
            if (gzip)
            {
                using var f = File.Create(path);
                using var z = new GZipStream(f, CompressionLevel.Fastest);
                z.Write(body);
            }
            else
            {
                File.WriteAllBytes(path, body);
            }

            foreach (int magic in new[] { Idx.LabelsMagic, Idx.ImagesMagic })
            {
                try
                {
                    var a = Idx.Read(path, magic);
                    long n = a.Dimensions.Aggregate(1L, (p, d) => p * d);
                    if (n != a.Data.Length)
                        return false.Label($"read {a.DimensionText} with {a.Data.Length} bytes");
                }
                catch (InvalidDataException e) when (e.Message.StartsWith("fuzz: ", StringComparison.Ordinal))
                {
                }
                catch (Exception e)
                {
                    return false.Label($"{e.GetType().Name}: {e.Message}");
                }
            }

            return true.ToProperty();
        });
}
