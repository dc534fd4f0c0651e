using System.Buffers.Binary;
using System.IO.Compression;

namespace IlgpuTrain.Training;

/// <summary>An IDX array of unsigned bytes: its dimensions (outermost first) and its data, row-major.</summary>
/// <param name="Dimensions">The dimensions, e.g. (60000, 28, 28) for images or (60000) for labels.</param>
/// <param name="Data">The bytes, the product of the dimensions long.</param>
public sealed record IdxArray(int[] Dimensions, byte[] Data)
{
    /// <summary>The dimensions as "60000 x 28 x 28".</summary>
    public string DimensionText => string.Join(" x ", Dimensions);
}

/// <summary>
/// Reads and writes IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed (detected
/// by the gzip magic 1f 8b, not by the file name).
/// </summary>
/// <remarks>
/// <para>Layout: a 4-byte magic 00 00 TT RR (TT the element type, RR the rank), RR big-endian
/// int32 dimensions, then the elements row-major. Only unsigned bytes (TT = 08) are accepted:
/// 0x00000801 (labels, rank 1) and 0x00000803 (images, rank 3).</para>
/// <para>A path that is not a regular file (a dangling link, a directory, a pipe, a device) or that
/// cannot be read is an <see cref="InputFileException"/>, raised before the file is opened (see
/// <see cref="InputFile"/>). Every failure of the content (truncated, corrupt, wrong kind, trailing
/// bytes, absurd dimensions) is a <see cref="InvalidDataException"/> naming the file, what was
/// expected and what was found.
/// Memory is bounded: the byte count the header claims is checked against
/// <see cref="MaxBytes"/> (and, for a raw file, against the file's length) before anything is
/// allocated, and a gzip stream's buffer grows only with the bytes actually decompressed.</para>
/// <para>A gzip file may hold several members (what <c>cat a.gz b.gz</c> gives; gzip and zcat read
/// them as one stream). GZipStream verifies each member's CRC-32 and length; the file's last 8 bytes
/// are checked against the last member's data, which catches a file cut inside its trailer or
/// followed by junk. A bad CRC or damaged stream is reported as "corrupt gzip data (...)".</para>
/// <para>Format: http://yann.lecun.com/exdb/mnist/ (the "IDX file format" section).</para>
/// </remarks>
public static class Idx
{
    /// <summary>Magic of a rank-1 unsigned-byte array (labels).</summary>
    public const int LabelsMagic = 0x00000801;

    /// <summary>Magic of a rank-3 unsigned-byte array (images).</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>The largest data size accepted (1 GiB): a header that claims more is rejected before allocating.</summary>
    public const long MaxBytes = 1L << 30;

    private const int ChunkBytes = 1 << 20;

    /// <summary>Reads a labels file (magic 0x00000801).</summary>
    /// <param name="path">The file, raw or gzip.</param>
    /// <returns>The array, rank 1.</returns>
    /// <exception cref="InvalidDataException">The file is truncated, corrupt or not a labels file.</exception>
    public static IdxArray ReadLabels(string path) => Read(path, LabelsMagic);

    /// <summary>Reads an images file (magic 0x00000803).</summary>
    /// <param name="path">The file, raw or gzip.</param>
    /// <returns>The array, rank 3 (count, rows, columns).</returns>
    /// <exception cref="InvalidDataException">The file is truncated, corrupt or not an images file.</exception>
    public static IdxArray ReadImages(string path) => Read(path, ImagesMagic);

    /// <summary>Reads an IDX file whose magic must be <paramref name="expectedMagic"/>.</summary>
    /// <param name="path">The file, raw or gzip.</param>
    /// <param name="expectedMagic"><see cref="LabelsMagic"/> or <see cref="ImagesMagic"/>.</param>
    /// <returns>The array.</returns>
    /// <exception cref="InvalidDataException">The file is truncated, corrupt or of another kind.</exception>
    public static IdxArray Read(string path, int expectedMagic)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var file = InputFile.OpenRead(path, "data file", $"replace it with the IDX {Kind(expectedMagic)} file (raw or gzip)");
        return Read(file, Path.GetFileName(path), expectedMagic);
    }

    /// <summary>Reads an IDX array from a stream (raw or gzip), to its end.</summary>
    /// <param name="stream">The stream, positioned at the start of the file.</param>
    /// <param name="name">The file name, for messages.</param>
    /// <param name="expectedMagic"><see cref="LabelsMagic"/> or <see cref="ImagesMagic"/>.</param>
    /// <returns>The array.</returns>
    /// <exception cref="InvalidDataException">The data is truncated, corrupt or of another kind.</exception>
    public static IdxArray Read(Stream stream, string name, int expectedMagic)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(name);
        if (expectedMagic != LabelsMagic && expectedMagic != ImagesMagic)
            throw new ArgumentOutOfRangeException(nameof(expectedMagic), $"Idx.Read: expected magic must be 0x{LabelsMagic:X8} (labels) or 0x{ImagesMagic:X8} (images), got 0x{expectedMagic:X8}.");

        var head = new byte[2];
        int got = ReadFully(stream, head, 0, 2, name, false);
        if (got == 0)
            throw DataFormat.Error(name, $"the file is empty; expected an IDX {Kind(expectedMagic)} file. Download it again.");
        bool gzip = got == 2 && head[0] == 0x1f && head[1] == 0x8b;
        var prefix = new MemoryStream(head, 0, got);
        using Stream raw = new ConcatStream(prefix, stream);
        using Stream input = gzip ? new GZipStream(raw, CompressionMode.Decompress, leaveOpen: true) : raw;
        long? available = !gzip && stream.CanSeek ? stream.Length - stream.Position + got : null;
        IdxArray array;
        try
        {
            array = Parse(input, name, expectedMagic, gzip, available);
        }
        catch (InvalidDataException e) when (gzip && e.InnerException is InvalidDataException && stream.CanSeek)
        {
            throw DataFormat.Error(name, $"corrupt gzip data ({Gzip.Diagnose(stream)}); the file is damaged, download it again.", e.InnerException);
        }

        if (gzip && stream.CanSeek)
            CheckGzipTrailer(stream, name, array);
        return array;
    }

    // GZipStream checks each member's CRC and length when its trailer is there, but reads a stream cut
    // inside the last 8-byte trailer (or followed by junk) back silently. The file's last 8 bytes must
    // be the last member's trailer (RFC 1952): the CRC-32 and length of the data's last ISIZE bytes. In
    // a one-member file that is all of it; in a multi-member file (cat a.gz b.gz) the last member's.
    private static void CheckGzipTrailer(Stream stream, string name, IdxArray array)
    {
        var header = Header(array);
        long decompressed = header.Length + (long)array.Data.Length;
        var trailer = new byte[8];
        if (stream.Length >= 18)
        {
            stream.Seek(-8, SeekOrigin.End);
            stream.ReadExactly(trailer);
        }

        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
        uint isize = BinaryPrimitives.ReadUInt32LittleEndian(trailer.AsSpan(4));
        bool ok = stream.Length >= 18 && isize <= decompressed;
        if (ok)
        {
            long skip = decompressed - isize;
            uint found = skip < header.Length
                ? Gzip.Crc32(array.Data, Gzip.Crc32(header.AsSpan((int)skip)))
                : Gzip.Crc32(array.Data.AsSpan((int)(skip - header.Length)));
            ok = found == crc;
        }

        if (!ok)
            throw DataFormat.Error(name, $"the gzip data decompressed to {decompressed} bytes but the file does not end with their gzip trailer (CRC-32 and length); the file is truncated or has bytes appended, download it again.");
    }

    private static byte[] Header(IdxArray array)
    {
        var header = new byte[4 + (4 * array.Dimensions.Length)];
        header[2] = 0x08;
        header[3] = (byte)array.Dimensions.Length;
        for (int i = 0; i < array.Dimensions.Length; i++)
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), array.Dimensions[i]);
        return header;
    }

    /// <summary>Writes an IDX file of unsigned bytes (magic 00 00 08 rank), optionally gzip-compressed.</summary>
    /// <param name="path">The destination.</param>
    /// <param name="array">The array (its data must be the product of its dimensions long).</param>
    /// <param name="gzip">Whether to gzip the file.</param>
    public static void Write(string path, IdxArray array, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(array);
        long n = 1;
        foreach (int d in array.Dimensions)
            n *= d;
        if (n != array.Data.Length)
            throw new ArgumentException($"Idx.Write: dimensions {array.DimensionText} need {n} bytes but the data has {array.Data.Length}.", nameof(array));
        using var file = File.Create(path);
        using Stream output = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        output.Write(Header(array));
        output.Write(array.Data);
    }

    private static IdxArray Parse(Stream input, string name, int expectedMagic, bool gzip, long? available)
    {
        string what = $"an IDX {Kind(expectedMagic)} file (magic 0x{expectedMagic:X8})";
        var magic = new byte[4];
        int got = ReadFully(input, magic, 0, 4, name, gzip);
        if (got < 4)
            throw DataFormat.Error(name, $"the file ends after {got} byte(s){(gzip ? " of decompressed data" : string.Empty)}, inside the 4-byte magic; expected {what}. The file is truncated, download it again.");
        int found = BinaryPrimitives.ReadInt32BigEndian(magic);
        if (magic[0] != 0 || magic[1] != 0)
            throw DataFormat.Error(name, $"magic is 0x{found:X8}, not {what}; this is not an IDX file{(gzip ? string.Empty : " (nor gzip)")}.");
        if (magic[2] != 0x08)
            throw DataFormat.Error(name, $"magic 0x{found:X8} has element type 0x{magic[2]:X2} ({TypeName(magic[2])}); only unsigned bytes (0x08) are supported, expected {what}.");
        if (found != expectedMagic)
            throw DataFormat.Error(name, $"magic 0x{found:X8} is a rank-{magic[3]} array, expected {what}; is this the {(found == LabelsMagic ? "labels" : found == ImagesMagic ? "images" : "wrong")} file?");

        int rank = magic[3];
        var dimBytes = new byte[4 * rank];
        got = ReadFully(input, dimBytes, 0, dimBytes.Length, name, gzip);
        if (got < dimBytes.Length)
            throw DataFormat.Error(name, $"the header needs {rank} dimension(s) ({dimBytes.Length} bytes) but the file has {got} after the magic. The file is truncated, download it again.");
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (dims[i] < 0)
                throw DataFormat.Error(name, $"dimension {i} is {(uint)dims[i]}, beyond 2^31 - 1; the header is corrupt, download the file again.");
        }

        foreach (int d in dims)
        {
            // Saturate instead of overflowing: any product beyond MaxBytes is rejected the same way.
            total = total > MaxBytes ? total : total * d;
        }

        string claim = $"header says {string.Join(" x ", dims)} = {(total > MaxBytes ? $"more than {MaxBytes}" : total.ToString())} bytes of {(rank == 1 ? "labels" : "pixels")}";
        if (total > MaxBytes)
            throw DataFormat.Error(name, $"{claim}, over the limit of {MaxBytes} bytes; the header is corrupt, download the file again.");
        long header = 4 + (4L * rank);
        if (available is long len && len - header < total)
            throw DataFormat.Error(name, $"{claim} but the file has {len - header} after the header; the file is truncated, download it again.");

        byte[] data = gzip ? ReadGrowing(input, (int)total, name, claim) : new byte[total];
        if (!gzip)
        {
            got = ReadFully(input, data, 0, data.Length, name, gzip);
            if (got < total)
                throw DataFormat.Error(name, $"{claim} but the file has {got} after the header; the file is truncated, download it again.");
        }

        long extra = CountRest(input, name, gzip);
        if (extra > 0)
            throw DataFormat.Error(name, $"{claim} but {extra} more byte(s) follow the data{(gzip ? " (decompressed)" : string.Empty)}; the file is corrupt or not {what}, download it again.");
        return new IdxArray(dims, data);
    }

    // A gzip stream's length is unknown until it is decompressed, so grow the buffer with the data
    // instead of trusting the header's claim with one allocation.
    private static byte[] ReadGrowing(Stream input, int total, string name, string claim)
    {
        var data = new byte[Math.Min(total, ChunkBytes)];
        int filled = 0;
        while (filled < total)
        {
            if (filled == data.Length)
                Array.Resize(ref data, (int)Math.Min(total, 2L * data.Length));
            int n = ReadFully(input, data, filled, data.Length - filled, name, true);
            filled += n;
            if (filled < data.Length)
                throw DataFormat.Error(name, $"{claim} but the file has {filled} after the header (decompressed); the file is truncated, download it again.");
        }

        return data;
    }

    private static long CountRest(Stream input, string name, bool gzip)
    {
        var buffer = new byte[64 * 1024];
        long extra = 0;
        int n;
        while ((n = ReadFully(input, buffer, 0, buffer.Length, name, gzip)) > 0)
            extra += n;
        return extra;
    }

    // Reads until count bytes or the end; a corrupt gzip stream becomes an InvalidDataException naming the file.
    private static int ReadFully(Stream s, byte[] buffer, int offset, int count, string name, bool gzip)
    {
        int total = 0;
        try
        {
            while (total < count)
            {
                int n = s.Read(buffer, offset + total, count - total);
                if (n == 0)
                    break;
                total += n;
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw DataFormat.Error(name, $"{(gzip ? "the gzip stream is corrupt or truncated" : "reading failed")} ({e.Message}); download the file again.", e);
        }

        return total;
    }

    private static string Kind(int magic) => magic == LabelsMagic ? "labels" : "images";

    private static string TypeName(byte t) => t switch
    {
        0x09 => "signed byte",
        0x0B => "int16",
        0x0C => "int32",
        0x0D => "float32",
        0x0E => "float64",
        _ => "not an IDX type",
    };

    // The two bytes read to sniff gzip, followed by the rest of the file.
    private sealed class ConcatStream(Stream first, Stream second) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = first.Read(buffer, offset, count);
            return n > 0 ? n : second.Read(buffer, offset, count);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            // The caller owns the underlying stream.
        }
    }
}
