using System.IO.Compression;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Fault injection for the data readers (Idx, Fashion-MNIST, CIFAR-10): a path that is not a regular
/// file (dangling link, directory, named pipe, device, unreadable) is refused before it is read, with
/// one line naming the path; a multi-member gzip file reads whole; a damaged gzip file says how.
/// </summary>
public sealed class DataFaultProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("data-faults-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Every data reader on one path: IDX labels, IDX images, and CIFAR-10.
    private static IEnumerable<(string Reader, Action Read)> Readers(string path) =>
    [
        ("Idx.ReadLabels", () => Idx.ReadLabels(path)),
        ("Idx.ReadImages", () => Idx.ReadImages(path)),
        ("Cifar10.Read", () => Cifar10.Read("t", [path], Normalization.Cifar10)),
    ];

    private static void RefusedByPath(string path, string problem)
    {
        foreach (var (reader, read) in Readers(path))
        {
            var e = Faults.ThrownWithin(read);
            var io = Assert.IsType<InputFileException>(e, exactMatch: false);
            Assert.True(io.Message.StartsWith(path + ": ", StringComparison.Ordinal) && io.Message.Contains(problem, StringComparison.Ordinal) && !io.Message.Contains('\n'), $"{reader}: {io.Message}");
        }
    }

    [Fact]
    public void A_dangling_link_a_directory_and_a_device_are_refused_by_path()
    {
        string dangling = Path.Combine(_dir, "dangling.gz");
        File.CreateSymbolicLink(dangling, Path.Combine(_dir, "nothing-here"));
        RefusedByPath(dangling, "symbolic link to");

        string directory = Path.Combine(_dir, "a-directory.gz");
        Directory.CreateDirectory(directory);
        RefusedByPath(directory, "a directory");

        // /dev/zero would read forever (or until memory runs out); it is refused by its type.
        RefusedByPath("/dev/zero", "a device");
        string linkToDevice = Path.Combine(_dir, "zero.gz");
        File.CreateSymbolicLink(linkToDevice, "/dev/zero");
        RefusedByPath(linkToDevice, "a device");
    }

    [FifoFact]
    public void A_named_pipe_is_refused_without_blocking()
    {
        string fifo = Path.Combine(_dir, "pipe.gz");
        Faults.MakeFifo(fifo);
        RefusedByPath(fifo, "named pipe (FIFO)");
    }

    [NotRootFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void An_unreadable_file_says_permission_denied()
    {
        string path = Path.Combine(_dir, "locked.gz");
        Idx.Write(path, new IdxArray([3], [1, 2, 3]), gzip: true);
        File.SetUnixFileMode(path, UnixFileMode.None);
        RefusedByPath(path, "permission denied");
    }

    [Fact]
    public void A_special_file_under_a_data_set_name_is_refused_not_reported_missing()
    {
        string dir = Path.Combine(_dir, "fmnist");
        Directory.CreateDirectory(dir);
        foreach (var f in FashionMnist.Files)
        {
            var array = f.Contains("images", StringComparison.Ordinal) ? new IdxArray([2, 28, 28], new byte[2 * 28 * 28]) : new IdxArray([2], [1, 2]);
            Idx.Write(Path.Combine(dir, f), array, gzip: true);
        }

        string labels = Path.Combine(dir, FashionMnist.Files[3]);
        File.Delete(labels);
        Directory.CreateDirectory(labels);
        var e = Assert.Throws<InputFileException>(() => FashionMnist.Load(dir));
        Assert.StartsWith(labels + ": a directory", e.Message);
    }

    /// <summary>What <c>cat a.gz b.gz ...</c> gives reads as the concatenated data, wherever the members split it.</summary>
    [Property(MaxTest = 30)]
    public Property A_multi_member_gzip_file_reads_whole() =>
        Prop.ForAll(Gen.Choose(0, 600).ToArbitrary(), Gen.ListOf(Gen.Choose(0, 1000)).ToArbitrary(), (count, cuts) =>
        {
            var labels = new IdxArray([count], Enumerable.Range(0, count).Select(i => (byte)(i * 7 % 10)).ToArray());
            var bytes = RawBytes(labels);
            var splits = cuts.Select(c => c % (bytes.Length + 1)).Append(0).Append(bytes.Length).Distinct().Order().ToArray();
            var file = new MemoryStream();
            for (int i = 0; i + 1 < splits.Length; i++)
                file.Write(Gz(bytes.AsSpan(splits[i], splits[i + 1] - splits[i])));
            string path = Path.Combine(_dir, $"multi-{count}-{Guid.NewGuid():N}.gz");
            File.WriteAllBytes(path, file.ToArray());
            var read = Idx.ReadLabels(path);
            return (read.Dimensions.SequenceEqual(labels.Dimensions) && read.Data.SequenceEqual(labels.Data))
                .Label($"{splits.Length - 1} member(s) split at {string.Join(", ", splits)}: read {read.DimensionText}");
        });

    [Fact]
    public void A_bad_crc_says_corrupt_gzip_data_crc_mismatch()
    {
        var bytes = LabelsGz(500);
        bytes[^8] ^= 0x01;
        var e = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Write("badcrc.gz", bytes)));
        Assert.StartsWith("badcrc.gz: corrupt gzip data (CRC mismatch", e.Message);
        Assert.DoesNotContain("unsupported compression method", e.Message);

        var damaged = LabelsGz(500);
        damaged[damaged.Length / 2] ^= 0x5A;
        var d = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Write("damaged.gz", damaged)));
        Assert.StartsWith("damaged.gz: corrupt gzip data (", d.Message);
        Assert.DoesNotContain("unsupported compression method", d.Message);
    }

    /// <summary>A file cut anywhere in its last trailer, or followed by junk, is refused (GZipStream alone reads both back silently).</summary>
    [Fact]
    public void A_file_cut_in_its_trailer_or_followed_by_junk_is_refused()
    {
        var whole = LabelsGz(300);
        for (int cut = 1; cut <= 8; cut++)
        {
            var e = Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Write($"cut{cut}.gz", whole.AsSpan(0, whole.Length - cut).ToArray())));
            Assert.Contains("truncated", e.Message);
        }

        Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Write("junk.gz", [.. whole, 1, 2, 3])));
        Assert.Throws<InvalidDataException>(() => Idx.ReadLabels(Write("twojunk.gz", [.. whole, .. LabelsGz(3).AsSpan(0, 12)])));
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] LabelsGz(int count)
    {
        return Gz(RawBytes(new IdxArray([count], Enumerable.Range(0, count).Select(i => (byte)(i % 10)).ToArray())));
    }

    private static byte[] RawBytes(IdxArray array)
    {
        string tmp = Path.GetTempFileName();
        try
        {
            Idx.Write(tmp, array, gzip: false);
            return File.ReadAllBytes(tmp);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    private static byte[] Gz(ReadOnlySpan<byte> data)
    {
        var ms = new MemoryStream();
        using (var g = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
            g.Write(data);
        return ms.ToArray();
    }
}
