using System.Buffers.Binary;
using System.IO.Compression;

namespace IlgpuTrain.Training;

/// <summary>
/// What GZipStream does not say: the CRC-32 of RFC 1952 (to check a file's last trailer) and, when
/// decompression fails, whether the compressed data or a trailer's CRC is to blame.
/// </summary>
internal static class Gzip
{
    // CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), one byte per table lookup.
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>The CRC-32 of <paramref name="data"/>, continuing from <paramref name="crc"/> (the CRC of the bytes before it; 0 to start).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data, uint crc = 0)
    {
        uint c = ~crc;
        foreach (byte b in data)
            c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    /// <summary>
    /// Why a gzip stream failed to decompress: the first member is inflated on its own (no trailer
    /// check) and compared with the file's last trailer, which is its own in a one-member file.
    /// </summary>
    /// <param name="stream">The whole file, seekable.</param>
    /// <returns>A short reason, such as "CRC mismatch: the trailer says 1a2b3c4d, the data gives 5e6f7a8b".</returns>
    public static string Diagnose(Stream stream)
    {
        if (stream.Length < 18 || stream.Length > Array.MaxLength)
            return "the compressed stream is damaged";
        var bytes = new byte[stream.Length];
        stream.Position = 0;
        stream.ReadExactly(bytes);
        int start = BodyStart(bytes);
        if (start < 0)
            return "a member's header is damaged";
        uint crc = 0;
        long length = 0;
        try
        {
            using var inflate = new DeflateStream(new MemoryStream(bytes, start, bytes.Length - start), CompressionMode.Decompress);
            var buffer = new byte[1 << 16];
            int n;
            while ((n = inflate.Read(buffer)) > 0)
            {
                crc = Crc32(buffer.AsSpan(0, n), crc);
                length += n;
            }
        }
        catch (InvalidDataException)
        {
            return "the compressed stream is damaged";
        }

        uint storedCrc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 8));
        uint storedLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4));
        if (storedLength != (uint)length)
            return "CRC or length mismatch in a member's trailer";
        return storedCrc != crc
            ? $"CRC mismatch: the trailer says {storedCrc:x8}, the data gives {crc:x8}"
            : "a member after the first is damaged";
    }

    // Where the deflate data of the first member starts (RFC 1952 section 2.3), or -1.
    private static int BodyStart(byte[] b)
    {
        if (b.Length < 10 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8)
            return -1;
        int flags = b[3], pos = 10;
        if ((flags & 4) != 0)
            pos = pos + 2 > b.Length ? -1 : pos + 2 + BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(pos));
        for (int bit = 8; bit <= 16 && pos >= 0; bit *= 2)
        {
            if ((flags & bit) != 0)
            {
                int end = Array.IndexOf(b, (byte)0, Math.Min(pos, b.Length));
                pos = end < 0 ? -1 : end + 1;
            }
        }

        if (pos >= 0 && (flags & 2) != 0)
            pos += 2;
        return pos >= 0 && pos < b.Length ? pos : -1;
    }
}
