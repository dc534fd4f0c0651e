using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training;

// The safetensors format (https://huggingface.co/docs/safetensors):
//   8 bytes   N, little-endian u64: the header's length
//   N bytes   UTF-8 JSON {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value"}}, padded with spaces so the buffer starts 8-aligned
//   rest      the byte buffer; offsets are relative to its start, tensors tile it with no gap,
//             no overlap and nothing after the last one; elements little-endian, row-major.
// The reader validates all of it before it slices anything, so a corrupt or hostile file yields a
// CheckpointFormatException and never an out-of-range read or an allocation sized by the header.

/// <summary>Element types of the safetensors format; <see cref="SafeTensors.DTypeName"/> gives the spelling in files.</summary>
public enum SafeTensorDType
{
    /// <summary>"BOOL", one byte.</summary>
    Bool,

    /// <summary>"U8".</summary>
    U8,

    /// <summary>"I8".</summary>
    I8,

    /// <summary>"F8_E4M3".</summary>
    F8E4M3,

    /// <summary>"F8_E5M2".</summary>
    F8E5M2,

    /// <summary>"I16".</summary>
    I16,

    /// <summary>"U16".</summary>
    U16,

    /// <summary>"F16", IEEE binary16.</summary>
    F16,

    /// <summary>"BF16", bfloat16.</summary>
    BF16,

    /// <summary>"I32".</summary>
    I32,

    /// <summary>"U32".</summary>
    U32,

    /// <summary>"F32", IEEE binary32.</summary>
    F32,

    /// <summary>"F64".</summary>
    F64,

    /// <summary>"I64".</summary>
    I64,

    /// <summary>"U64".</summary>
    U64,
}

/// <summary>One named tensor of a safetensors file: dtype, shape and its raw little-endian bytes.</summary>
public sealed class SafeTensor
{
    /// <summary>A tensor over <paramref name="data"/> (not copied).</summary>
    /// <param name="name">Its name (unique in a file, not "__metadata__").</param>
    /// <param name="dtype">Element type.</param>
    /// <param name="shape">Dimensions, each at least 0; empty for a scalar.</param>
    /// <param name="data">Exactly product(shape) x element size bytes.</param>
    public SafeTensor(string name, SafeTensorDType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (!SafeTensors.TryByteLength(dtype, shape, out long bytes))
            throw new ArgumentException($"SafeTensor \"{name}\": shape [{string.Join(", ", shape)}] has a negative or overflowing size.", nameof(shape));
        if (bytes != data.Length)
            throw new ArgumentException($"SafeTensor \"{name}\": {SafeTensors.DTypeName(dtype)} [{string.Join(", ", shape)}] needs {bytes} bytes but the data has {data.Length}.", nameof(data));
        Name = name;
        DType = dtype;
        Shape = shape.ToArray();
        Data = data;
    }

    /// <summary>The name.</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public SafeTensorDType DType { get; }

    /// <summary>The dimensions.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The raw bytes, little-endian, row-major.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Number of elements (1 for a scalar).</summary>
    public long Length => Shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>A F32 tensor holding a copy of <paramref name="values"/>.</summary>
    /// <param name="name">Its name.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="values">Elements, row-major.</param>
    /// <returns>The tensor.</returns>
    public static SafeTensor Float32(string name, IReadOnlyList<long> shape, ReadOnlySpan<float> values) =>
        new(name, SafeTensorDType.F32, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>A F16 tensor holding a copy of <paramref name="values"/>.</summary>
    /// <param name="name">Its name.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="values">Elements, row-major.</param>
    /// <returns>The tensor.</returns>
    public static SafeTensor Float16(string name, IReadOnlyList<long> shape, ReadOnlySpan<Half> values) =>
        new(name, SafeTensorDType.F16, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>An I32 tensor holding a copy of <paramref name="values"/>.</summary>
    /// <param name="name">Its name.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="values">Elements, row-major.</param>
    /// <returns>The tensor.</returns>
    public static SafeTensor Int32(string name, IReadOnlyList<long> shape, ReadOnlySpan<int> values) =>
        new(name, SafeTensorDType.I32, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>The elements of a F32 tensor.</summary>
    /// <returns>A copy.</returns>
    public float[] ToFloat32() => As<float>(SafeTensorDType.F32);

    /// <summary>The elements of a F16 tensor.</summary>
    /// <returns>A copy.</returns>
    public Half[] ToFloat16() => As<Half>(SafeTensorDType.F16);

    /// <summary>The elements of an I32 tensor.</summary>
    /// <returns>A copy.</returns>
    public int[] ToInt32() => As<int>(SafeTensorDType.I32);

    /// <summary>
    /// The elements converted to float from any dtype, as PyTorch's <c>tensor.float()</c>: F16, BF16,
    /// F8_E4M3 and F8_E5M2 exactly; F64 and 64-bit integers rounded to the nearest float; BOOL as 0 or 1.
    /// </summary>
    /// <returns>A new array, row-major.</returns>
    public float[] ConvertToFloat32()
    {
        var b = Data.Span;
        var r = new float[checked((int)Length)];
        for (int i = 0; i < r.Length; i++)
        {
            r[i] = DType switch
            {
                SafeTensorDType.F32 => BinaryPrimitives.ReadSingleLittleEndian(b[(4 * i)..]),
                SafeTensorDType.F16 => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b[(2 * i)..])),
                SafeTensorDType.BF16 => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b[(2 * i)..]) << 16),
                SafeTensorDType.F64 => (float)BinaryPrimitives.ReadDoubleLittleEndian(b[(8 * i)..]),
                SafeTensorDType.F8E5M2 => (float)BitConverter.UInt16BitsToHalf((ushort)(b[i] << 8)),
                SafeTensorDType.F8E4M3 => Float8E4M3(b[i]),
                SafeTensorDType.Bool => b[i] != 0 ? 1f : 0f,
                SafeTensorDType.U8 => b[i],
                SafeTensorDType.I8 => (sbyte)b[i],
                SafeTensorDType.I16 => BinaryPrimitives.ReadInt16LittleEndian(b[(2 * i)..]),
                SafeTensorDType.U16 => BinaryPrimitives.ReadUInt16LittleEndian(b[(2 * i)..]),
                SafeTensorDType.I32 => BinaryPrimitives.ReadInt32LittleEndian(b[(4 * i)..]),
                SafeTensorDType.U32 => BinaryPrimitives.ReadUInt32LittleEndian(b[(4 * i)..]),
                SafeTensorDType.I64 => BinaryPrimitives.ReadInt64LittleEndian(b[(8 * i)..]),
                _ => BinaryPrimitives.ReadUInt64LittleEndian(b[(8 * i)..]),
            };
        }

        return r;
    }

    /// <summary>
    /// The elements converted to int from any dtype, as PyTorch's <c>tensor.int()</c>: floats are
    /// truncated toward zero, BOOL is 0 or 1.
    /// </summary>
    /// <returns>A new array, row-major.</returns>
    /// <exception cref="OverflowException">An element (a NaN, or a value outside the int range) does not fit; the message names it.</exception>
    public int[] ConvertToInt32()
    {
        var b = Data.Span;
        var r = new int[checked((int)Length)];
        bool integral = DType is SafeTensorDType.I64 or SafeTensorDType.U64 or SafeTensorDType.U32;
        var floats = integral || DType is SafeTensorDType.I32 ? null : ConvertToFloat32();
        for (int i = 0; i < r.Length; i++)
        {
            double v = DType switch
            {
                SafeTensorDType.I32 => (double)BinaryPrimitives.ReadInt32LittleEndian(b[(4 * i)..]),
                SafeTensorDType.I64 => (double)BinaryPrimitives.ReadInt64LittleEndian(b[(8 * i)..]),
                SafeTensorDType.U64 => (double)BinaryPrimitives.ReadUInt64LittleEndian(b[(8 * i)..]),
                SafeTensorDType.U32 => (double)BinaryPrimitives.ReadUInt32LittleEndian(b[(4 * i)..]),
                _ => (double)floats![i],
            };
            double t = Math.Truncate(v);
            if (!(t >= int.MinValue && t <= int.MaxValue))
                throw new OverflowException($"element {i} of {SafeTensors.DTypeName(DType)} tensor \"{Name}\" is {v}, which does not fit a 32-bit integer.");
            r[i] = (int)t;
        }

        return r;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {SafeTensors.DTypeName(DType)} [{string.Join(", ", Shape)}]";

    // OCP FP8 E4M3 ("fn"): sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities,
    // S.1111.111 is NaN; exponent 0 is subnormal: m/8 x 2^-6.
    private static float Float8E4M3(byte v)
    {
        int e = (v >> 3) & 0xF, m = v & 0x7;
        float sign = (v & 0x80) != 0 ? -1f : 1f;
        if (e == 0xF && m == 0x7)
            return float.NaN;
        return sign * (e == 0 ? m / 8f * MathF.Pow(2, -6) : (1 + (m / 8f)) * MathF.Pow(2, e - 7));
    }

    private T[] As<T>(SafeTensorDType want)
        where T : unmanaged
    {
        if (DType != want)
            throw new InvalidOperationException($"Tensor \"{Name}\" is {SafeTensors.DTypeName(DType)}, not {SafeTensors.DTypeName(want)}.");
        return MemoryMarshal.Cast<byte, T>(Data.Span).ToArray();
    }
}

/// <summary>The tensors and metadata of one safetensors file, as read.</summary>
/// <param name="Source">The file (or the name given for in-memory bytes), for messages.</param>
/// <param name="Tensors">The tensors in offset order.</param>
/// <param name="Metadata">The "__metadata__" entries (empty when absent).</param>
public sealed record SafeTensorsFile(string Source, IReadOnlyList<SafeTensor> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    private readonly Dictionary<string, SafeTensor> _byName = Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    /// <param name="name">Its name.</param>
    /// <returns>The tensor or null.</returns>
    public SafeTensor? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, SafeTensor> ByName => _byName;
}

/// <summary>Reads and writes the safetensors format (the format of Hugging Face's <c>safetensors</c> package).</summary>
/// <remarks>
/// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON naming each tensor's dtype,
/// shape and [begin, end) byte offsets in the buffer that follows, plus an optional "__metadata__"
/// object of strings. The writer pads the header with spaces to a multiple of 8 and stores tensors in
/// the order given, with no gaps. The reader rejects everything the reference implementation rejects
/// (and duplicate names), always with a <see cref="CheckpointFormatException"/>.
/// </remarks>
public static class SafeTensors
{
    /// <summary>Largest header accepted on read (the reference implementation's limit, 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The reserved header key of the string-to-string metadata.</summary>
    public const string MetadataKey = "__metadata__";

    private static readonly (SafeTensorDType DType, string Name, int Size)[] DTypes =
    [
        (SafeTensorDType.Bool, "BOOL", 1), (SafeTensorDType.U8, "U8", 1), (SafeTensorDType.I8, "I8", 1),
        (SafeTensorDType.F8E4M3, "F8_E4M3", 1), (SafeTensorDType.F8E5M2, "F8_E5M2", 1),
        (SafeTensorDType.I16, "I16", 2), (SafeTensorDType.U16, "U16", 2), (SafeTensorDType.F16, "F16", 2), (SafeTensorDType.BF16, "BF16", 2),
        (SafeTensorDType.I32, "I32", 4), (SafeTensorDType.U32, "U32", 4), (SafeTensorDType.F32, "F32", 4),
        (SafeTensorDType.F64, "F64", 8), (SafeTensorDType.I64, "I64", 8), (SafeTensorDType.U64, "U64", 8),
    ];

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The dtype's spelling in files ("F32", "BF16", ...).</summary>
    /// <param name="dtype">The dtype.</param>
    /// <returns>Its name.</returns>
    public static string DTypeName(SafeTensorDType dtype) => Entry(dtype).Name;

    /// <summary>Bytes per element.</summary>
    /// <param name="dtype">The dtype.</param>
    /// <returns>1, 2, 4 or 8.</returns>
    public static int SizeOf(SafeTensorDType dtype) => Entry(dtype).Size;

    /// <summary>Writes a safetensors file to <paramref name="stream"/>.</summary>
    /// <param name="stream">The destination (written from its current position).</param>
    /// <param name="tensors">The tensors, stored in this order.</param>
    /// <param name="metadata">String metadata, or null for none.</param>
    public static void Write(Stream stream, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            if (t.Name == MetadataKey)
                throw new ArgumentException($"SafeTensors.Write: \"{MetadataKey}\" is reserved and cannot name a tensor.", nameof(tensors));
            if (!names.Add(t.Name))
                throw new ArgumentException($"SafeTensors.Write: the tensor name \"{t.Name}\" appears twice; names must be unique.", nameof(tensors));
        }

        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json, WriterOptions))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata)
                    w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", DTypeName(t.DType));
                w.WriteStartArray("shape");
                foreach (long d in t.Shape)
                    w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - (json.Length % 8)) % 8);
        for (int i = 0; i < pad; i++)
            json.WriteByte((byte)' ');

        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        stream.Write(len);
        stream.Write(json.GetBuffer(), 0, (int)json.Length);
        foreach (var t in list)
            stream.Write(t.Data.Span);
    }

    /// <summary>Writes a safetensors file atomically (see <see cref="AtomicFile.Write"/>).</summary>
    /// <param name="path">The file.</param>
    /// <param name="tensors">The tensors, stored in this order.</param>
    /// <param name="metadata">String metadata, or null for none.</param>
    public static void Save(string path, IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        AtomicFile.Write(path, s => Write(s, list, metadata));
    }

    /// <summary>Reads and validates a safetensors file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>Its tensors and metadata.</returns>
    /// <exception cref="FileNotFoundException">Nothing is at <paramref name="path"/>.</exception>
    /// <exception cref="InputFileException">The path is not a regular file (a dangling link, a directory, a pipe, a device) or cannot be read; checked before it is opened.</exception>
    /// <exception cref="CheckpointFormatException">The file is not valid safetensors.</exception>
    public static SafeTensorsFile Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = InputFile.OpenRead(path, "checkpoint", "pass the .safetensors file itself (train writes <output>/checkpoints/last.safetensors and best.safetensors)");
        long length = file.Length;
        if (length > Array.MaxLength)
            throw new CheckpointFormatException(path, $"the file is {length} bytes; files over {Array.MaxLength} bytes are not supported.");

        // The header's claim is checked against the file's length before the file is read whole.
        Span<byte> prefix = stackalloc byte[8];
        if (length >= 8)
        {
            file.ReadExactly(prefix);
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (n > MaxHeaderBytes)
                throw Bad(path, $"the header length is {n} bytes, over the limit of {MaxHeaderBytes}; this is not a safetensors file or it is corrupt.");
            if (n > (ulong)(length - 8))
                throw Bad(path, $"the header length is {n} bytes but only {length - 8} bytes follow the length; the file is truncated or corrupt.");
            file.Position = 0;
        }

        var bytes = new byte[length];
        int got = file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        if (got < length)
            throw Bad(path, $"the file shrank from {length} to {got} bytes while it was read; another program is writing it. Wait for it to finish and try again.");
        return Read(bytes, path);
    }

    /// <summary>Parses and validates the bytes of a safetensors file; the tensors view <paramref name="bytes"/> (no copy).</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="source">A name for messages (the file path).</param>
    /// <returns>Its tensors and metadata.</returns>
    /// <exception cref="CheckpointFormatException">The bytes are not valid safetensors.</exception>
    public static SafeTensorsFile Read(byte[] bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(source);
        if (bytes.Length < 8)
            throw Bad(source, $"the file is {bytes.Length} bytes, too short for the 8-byte header length.");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > MaxHeaderBytes)
            throw Bad(source, $"the header length is {n} bytes, over the limit of {MaxHeaderBytes}; this is not a safetensors file or it is corrupt.");
        if (n > (ulong)(bytes.Length - 8))
            throw Bad(source, $"the header length is {n} bytes but only {bytes.Length - 8} bytes follow the length; the file is truncated or corrupt.");
        int headerLength = (int)n;
        if (headerLength == 0 || bytes[8] != (byte)'{')
            throw Bad(source, "the header does not start with '{'; this is not a safetensors file.");

        // JsonDocument checks UTF-8 only when a string is read; check it all up front.
        if (!System.Text.Unicode.Utf8.IsValid(bytes.AsSpan(8, headerLength)))
            throw Bad(source, "the header is not valid UTF-8.");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes.AsMemory(8, headerLength), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad(source, $"the header is not valid JSON: {e.Message}");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Bad(source, "the header is not a JSON object.");
            int bufferStart = 8 + headerLength;
            long bufferLength = bytes.Length - bufferStart;
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(p.Name))
                    throw Bad(source, $"the header names \"{Short(p.Name)}\" twice.");
                if (p.Name == MetadataKey)
                    ReadMetadata(source, p.Value, metadata);
                else
                    entries.Add(ReadEntry(source, p.Name, p.Value));
            }

            var ordered = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
            long expected = 0;
            foreach (var e in ordered)
            {
                if (e.Begin < expected)
                    throw Bad(source, $"tensor \"{Short(e.Name)}\" at bytes [{e.Begin}, {e.End}) overlaps the tensor before it, which ends at {expected}.");
                if (e.Begin > expected)
                    throw Bad(source, $"tensor \"{Short(e.Name)}\" starts at byte {e.Begin} but the tensor before it ends at {expected}; tensors must tile the buffer with no gap.");
                if (e.End > bufferLength)
                    throw Bad(source, $"tensor \"{Short(e.Name)}\" at bytes [{e.Begin}, {e.End}) ends past the buffer of {bufferLength} bytes; the file is truncated or corrupt.");
                expected = e.End;
            }
            if (expected != bufferLength)
                throw Bad(source, $"the tensors cover {expected} bytes but the buffer holds {bufferLength}; the file has trailing bytes or a corrupt header.");

            var tensors = ordered
                .Select(e => new SafeTensor(e.Name, e.DType, e.Shape, bytes.AsMemory(bufferStart + (int)e.Begin, (int)(e.End - e.Begin))))
                .ToList();
            return new SafeTensorsFile(source, tensors, metadata);
        }
    }

    /// <summary>product(shape) x element size, false when a dimension is negative or the size overflows.</summary>
    /// <param name="dtype">The dtype.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="bytes">The size in bytes.</param>
    /// <returns>Whether the size is valid.</returns>
    internal static bool TryByteLength(SafeTensorDType dtype, IReadOnlyList<long> shape, out long bytes)
    {
        bytes = 0;
        long n = SizeOf(dtype);
        foreach (long d in shape)
        {
            if (d < 0)
                return false;
            if (d != 0 && n > long.MaxValue / d)
                return false;
            n *= d;
        }
        bytes = n;
        return true;
    }

    private static void ReadMetadata(string source, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null)
            return;
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(source, $"\"{MetadataKey}\" must be an object of strings, not {value.ValueKind}.");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw Bad(source, $"metadata entry \"{Short(m.Name)}\" must be a string, not {m.Value.ValueKind}.");
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                throw Bad(source, $"metadata entry \"{Short(m.Name)}\" appears twice.");
        }
    }

    private static (string Name, SafeTensorDType DType, long[] Shape, long Begin, long End) ReadEntry(string source, string name, JsonElement value)
    {
        string what = $"tensor \"{Short(name)}\"";
        if (name.Length == 0)
            throw Bad(source, "a tensor has an empty name.");
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(source, $"{what}: the entry must be an object with dtype, shape and data_offsets, not {value.ValueKind}.");
        if (!value.TryGetProperty("dtype", out var dtypeJson) || dtypeJson.ValueKind != JsonValueKind.String)
            throw Bad(source, $"{what}: no string \"dtype\".");
        string dtypeName = dtypeJson.GetString()!;
        int k = Array.FindIndex(DTypes, d => d.Name == dtypeName);
        if (k < 0)
            throw Bad(source, $"{what}: unknown dtype \"{Short(dtypeName)}\"; known: {string.Join(", ", DTypes.Select(d => d.Name))}.");
        var dtype = DTypes[k].DType;
        var shape = Integers(source, what, value, "shape", null);
        var offsets = Integers(source, what, value, "data_offsets", 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw Bad(source, $"{what}: data_offsets [{begin}, {end}] end before they begin.");
        if (!TryByteLength(dtype, shape, out long bytes))
            throw Bad(source, $"{what}: shape [{string.Join(", ", shape)}] of {dtypeName} has a size that overflows.");
        if (bytes != end - begin)
            throw Bad(source, $"{what}: {dtypeName} [{string.Join(", ", shape)}] needs {bytes} bytes but data_offsets [{begin}, {end}] span {end - begin}.");
        return (name, dtype, shape, begin, end);
    }

    private static long[] Integers(string source, string what, JsonElement entry, string key, int? count)
    {
        if (!entry.TryGetProperty(key, out var arr) || arr.ValueKind != JsonValueKind.Array)
            throw Bad(source, $"{what}: no array \"{key}\".");
        int len = arr.GetArrayLength();
        if (count is int c && len != c)
            throw Bad(source, $"{what}: \"{key}\" has {len} numbers, expected {c}.");
        if (len > 64)
            throw Bad(source, $"{what}: \"{key}\" has {len} dimensions; at most 64 are supported.");
        var result = new long[len];
        int i = 0;
        foreach (var x in arr.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out long v) || v < 0)
                throw Bad(source, $"{what}: \"{key}\" must hold non-negative integers below 2^63, found {Short(x.GetRawText())}.");
            result[i++] = v;
        }
        return result;
    }

    private static (SafeTensorDType DType, string Name, int Size) Entry(SafeTensorDType dtype)
    {
        foreach (var d in DTypes)
        {
            if (d.DType == dtype)
                return d;
        }
        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype.");
    }

    private static string Short(string s) => s.Length > 80 ? s[..80] + "..." : s;

    private static CheckpointFormatException Bad(string source, string problem) => new(source, problem);
}

/// <summary>A checkpoint or safetensors file that is malformed: truncated, corrupt, or not of the expected format.</summary>
public sealed class CheckpointFormatException : Exception
{
    /// <summary>An error about <paramref name="file"/>.</summary>
    /// <param name="file">The file.</param>
    /// <param name="problem">What is wrong with it.</param>
    public CheckpointFormatException(string file, string problem)
        : base($"{file}: {problem}")
    {
        File = file;
        Problem = problem;
    }

    /// <summary>The file.</summary>
    public string File { get; }

    /// <summary>What is wrong with it.</summary>
    public string Problem { get; }
}

/// <summary>A well-formed checkpoint that does not fit what it is loaded into (another model or optimizer).</summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>A mismatch between <paramref name="file"/> and the caller's model or optimizer.</summary>
    /// <param name="file">The checkpoint file.</param>
    /// <param name="problem">What differs, naming the first difference.</param>
    public CheckpointMismatchException(string file, string problem)
        : base($"{file}: {problem}")
    {
        File = file;
        Problem = problem;
    }

    /// <summary>The file.</summary>
    public string File { get; }

    /// <summary>What differs.</summary>
    public string Problem { get; }
}

/// <summary>Atomic file replacement: write a temporary file beside the target, flush it to disk, rename it over the target.</summary>
public static class AtomicFile
{
    /// <summary>
    /// Runs <paramref name="write"/> on a fresh temporary file <c>path.tmp-PID-GUID</c>, flushes it to
    /// disk, then renames it over <paramref name="path"/> (a rename within a directory is atomic on
    /// Linux). If <paramref name="write"/> throws, the temporary file is deleted and
    /// <paramref name="path"/> is untouched; if the process dies, at worst a stray temporary file
    /// remains, which the next write of the same file (or <see cref="RemoveStale"/>) deletes.
    /// </summary>
    /// <param name="path">The target file.</param>
    /// <param name="write">Writes the whole content.</param>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
            RemoveStale(dir, Path.GetFileName(full));
        }

        string tmp = $"{full}{TempMarker}{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(tmp);
            }
            catch (IOException)
            {
                // The original error matters more than a stray temporary file.
            }
            throw;
        }
    }

    /// <summary>
    /// Deletes the temporary files that <see cref="Write"/> left in <paramref name="directory"/> when
    /// its process died: <c>NAME.tmp-PID-GUID</c> whose process is no longer running, and any
    /// <c>NAME.tmp-...</c> of this pattern untouched for <see cref="StaleAge"/> (a reused process id,
    /// or the older <c>NAME.tmp-GUID</c> names). Files of a live writer and every other file stay.
    /// </summary>
    /// <param name="directory">The folder (nothing happens when it does not exist).</param>
    /// <param name="target">Only the temporary files of this file name, or null for every target.</param>
    /// <returns>The paths deleted.</returns>
    public static IReadOnlyList<string> RemoveStale(string directory, string? target = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var removed = new List<string>();
        if (!Directory.Exists(directory))
            return removed;
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateFiles(directory, $"{target ?? "*"}{TempMarker}*").ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return removed;
        }

        foreach (var path in candidates)
        {
            if (!IsStale(path))
                continue;
            try
            {
                File.Delete(path);
                removed.Add(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another cleaner got it first, or the folder is read-only: the run goes on.
            }
        }

        return removed;
    }

    /// <summary>How long a temporary file must be untouched to count as stray whatever its name says (1 hour; a write takes seconds).</summary>
    public static TimeSpan StaleAge { get; } = TimeSpan.FromHours(1);

    private const string TempMarker = ".tmp-";

    // NAME.tmp-PID-GUID (GUID as 32 hex digits) or the older NAME.tmp-GUID.
    private static bool IsStale(string path)
    {
        string name = Path.GetFileName(path);
        int at = name.LastIndexOf(TempMarker, StringComparison.Ordinal);
        if (at <= 0)
            return false;
        var tail = name.AsSpan(at + TempMarker.Length);
        int dash = tail.IndexOf('-');
        var guid = dash < 0 ? tail : tail[(dash + 1)..];
        if (guid.Length != 32 || !Guid.TryParseExact(guid, "N", out _))
            return false;
        if (DateTime.UtcNow - File.GetLastWriteTimeUtc(path) > StaleAge)
            return true;
        return dash > 0 && int.TryParse(tail[..dash], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid) && !IsRunning(pid);
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId)
            return true;
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
