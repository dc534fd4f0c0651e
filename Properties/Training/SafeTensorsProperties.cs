using System.Buffers.Binary;
using System.Text;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Safetensors: round trips, the byte layout of the spec, and clean errors on every malformed file.</summary>
public class SafeTensorsProperties
{
    private const string Junk = "{}[]\",:0123456789-.eE \\u";

    [Property(MaxTest = 60)]
    public Property Write_then_read_returns_the_same_tensors_and_metadata() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var tensors = Gens.SafeTensorList(seed);
            var metadata = Gens.SafeTensorMetadata(seed);
            var bytes = ToBytes(tensors, metadata);
            var file = SafeTensors.Read(bytes, "mem");
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            var prop = (n % 8 == 0).Label($"header length {n} is a multiple of 8")
                .And((file.Tensors.Count == tensors.Length).Label($"{file.Tensors.Count} tensors read, {tensors.Length} written"))
                .And((file.Metadata.Count == metadata.Count && metadata.All(kv => file.Metadata.TryGetValue(kv.Key, out var v) && v == kv.Value)).Label("metadata"));
            for (int i = 0; i < Math.Min(tensors.Length, file.Tensors.Count); i++)
            {
                var (a, b) = (tensors[i], file.Tensors[i]);
                prop = prop.And((a.Name == b.Name && a.DType == b.DType && a.Shape.SequenceEqual(b.Shape) && a.Data.Span.SequenceEqual(b.Data.Span))
                    .Label($"tensor {i}: wrote {a}, read {b}"));
            }
            return prop;
        });

    [Property(MaxTest = 30)]
    public Property Typed_tensors_round_trip_bitwise() =>
        Prop.ForAll(Gen.Choose(0, 300).ToArbitrary(), n =>
        {
            var r = new Random(n);
            var f32 = Enumerable.Range(0, n).Select(_ => BitConverter.Int32BitsToSingle(r.Next(int.MinValue, int.MaxValue))).ToArray();
            var f16 = Enumerable.Range(0, n).Select(_ => (Half)(float)((r.NextDouble() * 200) - 100)).ToArray();
            var i32 = Enumerable.Range(0, n).Select(_ => r.Next(int.MinValue, int.MaxValue)).ToArray();
            var bytes = ToBytes([SafeTensor.Float32("a", [n], f32), SafeTensor.Float16("b", [1, n], f16), SafeTensor.Int32("c", [n, 1], i32)], null);
            var file = SafeTensors.Read(bytes, "mem");
            return file.Find("a")!.ToFloat32().Select(BitConverter.SingleToInt32Bits).SequenceEqual(f32.Select(BitConverter.SingleToInt32Bits)).Label("F32 bits (NaN payloads included)")
                .And(file.Find("b")!.ToFloat16().Select(H16).SequenceEqual(f16.Select(H16)).Label("F16 bits"))
                .And(file.Find("c")!.ToInt32().SequenceEqual(i32).Label("I32"));
        });

    /// <summary>The byte layout, written out by hand from the spec (shares nothing with the writer).</summary>
    [Fact]
    public void A_hand_built_file_reads_and_the_writer_produces_the_same_bytes()
    {
        string header = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"n\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]}}";
        header = header.PadRight((header.Length + 7) / 8 * 8);
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes((ulong)header.Length));
        bytes.AddRange(Encoding.UTF8.GetBytes(header));
        bytes.AddRange(BitConverter.GetBytes(1.5f));
        bytes.AddRange(BitConverter.GetBytes(-2f));
        bytes.AddRange(BitConverter.GetBytes(7));
        var file = SafeTensors.Read([.. bytes], "hand");
        Assert.Equal(["w", "n"], file.Tensors.Select(t => t.Name));
        Assert.Equal([1.5f, -2f], file.Find("w")!.ToFloat32());
        Assert.Equal([7], file.Find("n")!.ToInt32());
        Assert.Empty(file.Find("n")!.Shape);
        Assert.Equal("pt", file.Metadata["format"]);
        var written = ToBytes([SafeTensor.Float32("w", [2], [1.5f, -2f]), SafeTensor.Int32("n", [], [7])], new Dictionary<string, string> { ["format"] = "pt" });
        Assert.Equal(bytes, written);
    }

    [Property(MaxTest = 20)]
    public Property Every_truncation_is_a_format_error() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var bytes = ToBytes(Gens.SafeTensorList(seed), Gens.SafeTensorMetadata(seed));
            var prop = true.ToProperty();
            for (int len = 0; len < bytes.Length; len += Math.Max(1, bytes.Length / 97))
            {
                var cut = bytes.AsSpan(0, len).ToArray();
                prop = prop.And(Outcome(cut).StartsWith("format:", StringComparison.Ordinal).Label($"truncated to {len} of {bytes.Length}: {Outcome(cut)}"));
            }
            return prop;
        });

    /// <summary>Random damage anywhere: the reader either accepts the file or throws CheckpointFormatException.</summary>
    [Property(MaxTest = 300)]
    public Property Fuzzed_files_never_throw_anything_but_format_errors() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            var bytes = ToBytes(Gens.SafeTensorList(seed), Gens.SafeTensorMetadata(seed)).ToList();
            int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.ToArray());
            for (int m = r.Next(1, 4); m > 0 && bytes.Count > 0; m--)
            {
                // Mostly in the header, where the parser lives.
                int at = r.Next(3) == 0 ? r.Next(bytes.Count) : r.Next(Math.Min(headerEnd, bytes.Count));
                switch (r.Next(6))
                {
                    case 0: bytes[at] ^= (byte)(1 << r.Next(8)); break;
                    case 1: bytes[at] = (byte)Junk[r.Next(Junk.Length)]; break;
                    case 2: bytes.RemoveAt(at); break;
                    case 3: bytes.Insert(at, (byte)Junk[r.Next(Junk.Length)]); break;
                    case 4: bytes.RemoveRange(at, bytes.Count - at); break;
                    default:
                        if (bytes.Count >= 8)
                        {
                            var len = BitConverter.GetBytes(r.Next(4) == 0 ? (ulong)r.NextInt64() : (ulong)r.Next(0, bytes.Count + 16));
                            for (int i = 0; i < 8; i++)
                                bytes[i] = len[i];
                        }
                        break;
                }
            }
            string outcome = Outcome([.. bytes]);
            return (outcome == "ok" || outcome.StartsWith("format:", StringComparison.Ordinal)).Label(outcome).Collect(outcome == "ok" ? "accepted" : "rejected");
        });

    /// <summary>Headers that are valid JSON but break one rule each, with the length field kept consistent.</summary>
    [Theory]
    [InlineData("[]", "does not start with '{'")]
    [InlineData("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8 bytes")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", "overflows")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "expected 2")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "end before")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "no gap")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "overlaps")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "twice")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", "ends past the buffer")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "trailing bytes")]
    [InlineData("{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "must be a string")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "data_offsets")]
    [InlineData("{\"a\":\"F32\"}", "must be an object")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "not valid JSON")]
    [InlineData(" {}", "does not start with '{'")]
    public void Each_broken_rule_is_a_named_format_error(string header, string expected)
    {
        var bytes = new List<byte>();
        var h = Encoding.UTF8.GetBytes(header);
        bytes.AddRange(BitConverter.GetBytes((ulong)h.Length));
        bytes.AddRange(h);
        bytes.AddRange(new byte[8]); // an 8-byte buffer
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensors.Read([.. bytes], "bad.safetensors"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("bad.safetensors: ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_huge_header_length_is_refused_before_any_allocation()
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        Assert.Contains("over the limit", Assert.Throws<CheckpointFormatException>(() => SafeTensors.Read(bytes, "f")).Message, StringComparison.Ordinal);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 9);
        Assert.Contains("truncated", Assert.Throws<CheckpointFormatException>(() => SafeTensors.Read(bytes, "f")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_atomic_write_leaves_the_previous_file_and_no_temporary()
    {
        string dir = Directory.CreateTempSubdirectory("st-atomic").FullName;
        try
        {
            string path = Path.Combine(dir, "model.safetensors");
            var first = Gens.SafeTensorList(1).Append(SafeTensor.Float32("z", [3], [1f, 2f, 3f])).ToArray();
            SafeTensors.Save(path, first);
            var before = File.ReadAllBytes(path);
            var second = Gens.SafeTensorList(2).Append(SafeTensor.Float32("q", [1000], new float[1000])).ToArray();
            Assert.Throws<IOException>(() => AtomicFile.Write(path, s => SafeTensors.Write(new FailingStream(s, 100), second)));
            Assert.Equal(before, File.ReadAllBytes(path));
            Assert.Equal([path], Directory.GetFiles(dir));
            SafeTensors.Save(path, second);
            Assert.Equal(second.Length, SafeTensors.Load(path).Tensors.Count);
            Assert.Equal([path], Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Writer_rejects_duplicate_and_reserved_names()
    {
        var t = SafeTensor.Int32("a", [1], [1]);
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(Stream.Null, [t, t]));
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(Stream.Null, [SafeTensor.Int32(SafeTensors.MetadataKey, [1], [1])]));
        Assert.Throws<ArgumentException>(() => new SafeTensor("a", SafeTensorDType.F32, [2], new byte[4]));
    }

    internal static byte[] ToBytes(IEnumerable<SafeTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var ms = new MemoryStream();
        SafeTensors.Write(ms, tensors, metadata);
        return ms.ToArray();
    }

    private static ushort H16(Half h) => System.Runtime.InteropServices.MemoryMarshal.Cast<Half, ushort>([h])[0];

    private static string Outcome(byte[] bytes)
    {
        try
        {
            SafeTensors.Read(bytes, "fuzz");
            return "ok";
        }
        catch (CheckpointFormatException e)
        {
            return "format: " + e.Problem;
        }
        catch (Exception e)
        {
            return $"WRONG EXCEPTION {e.GetType().Name}: {e.Message}";
        }
    }
}

/// <summary>A write-only stream that fails with an IOException after <c>limit</c> bytes, like a full disk or a crash.</summary>
/// <param name="inner">The real stream.</param>
/// <param name="limit">Bytes let through.</param>
internal sealed class FailingStream(Stream inner, long limit) : Stream
{
    private long _written;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _written;

    public override long Position { get => _written; set => throw new NotSupportedException(); }

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        long room = limit - _written;
        if (buffer.Length > room)
        {
            inner.Write(buffer[..(int)Math.Max(0, room)]);
            _written = limit;
            inner.Flush();
            throw new IOException($"simulated crash after {limit} bytes");
        }
        inner.Write(buffer);
        _written += buffer.Length;
    }
}
