using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace IlgpuTrain.Properties;

/// <summary>
/// What README.md shows works as shown: every <c>csharp</c> block compiles, with the usings a
/// user writes (the library's four namespaces together with ILGPU's), against the built
/// assemblies; and the namespaces a user imports together never give two types one name.
/// </summary>
public partial class ReadmeProperties
{
    // The usings a user of the library writes; a block's own usings come after them (a repeated
    // using is a warning, not an error).
    private const string UserUsings = """
        using System;
        using System.Collections.Generic;
        using System.Linq;
        using ILGPU;
        using ILGPU.Runtime;
        using IlgpuTrain.Functional;
        using IlgpuTrain.Layers;
        using IlgpuTrain.Optimizers;
        using IlgpuTrain.Training;
        using static ReadmeContext;

        """;

    // The values the README's text names around a block that does not declare them ("the
    // parameters", "the gradients", "a step"). Only compiled, never run: a block's own
    // declaration of the same name shadows these.
    private const string Context = """
        using System;
        using IlgpuTrain.Functional;
        using IlgpuTrain.Optimizers;

        internal static class ReadmeContext
        {
            public static ComputeDevice device => throw new NotSupportedException();
            public static StepScope step => throw new NotSupportedException();
            public static ParamTree parameters { get; set; } = null!;
            public static ParamTree grads => throw new NotSupportedException();
            public static Tensor x => throw new NotSupportedException();
            public static Tensor seed => throw new NotSupportedException();
            public static float[] values => [];
            public static float[] images => [];
            public static int[] labels => [];
            public static Rng rng => Rng.Create(0);
            public static uint stepNumber => 0;
            public static IGradientTransformation optimizer => throw new NotSupportedException();
            public static OptState optState { get; set; } = null!;
            public static Tensor Loss(Params p, Tensor input) => throw new NotSupportedException();
        }
        """;

    // The namespaces a user imports together, and ILGPU's.
    private static readonly string[] UserNamespaces =
        ["IlgpuTrain.Functional", "IlgpuTrain.Layers", "IlgpuTrain.Optimizers", "IlgpuTrain.Training", "IlgpuTrain.Kernels", "IlgpuTrain.Kernels.Runtime", "ILGPU", "ILGPU.Runtime"];

    [GeneratedRegex(@"^```csharp\s*\n(.*?)^```", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex CsharpBlock();

    private static string Root()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "IlgpuTrain.sln")))
            dir = dir.Parent;
        Assert.True(dir is not null, $"no IlgpuTrain.sln above {AppContext.BaseDirectory}");
        return dir!.FullName;
    }

    /// <summary>The csharp blocks of README.md, with the line each starts on.</summary>
    public static IReadOnlyList<(int Line, string Code)> Blocks()
    {
        string text = File.ReadAllText(Path.Combine(Root(), "README.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        return CsharpBlock().Matches(text)
            .Select(m => (text[..m.Index].Count(c => c == '\n') + 2, m.Groups[1].Value))
            .ToList();
    }

    private static IReadOnlyList<MetadataReference> References { get; } =
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Where(File.Exists)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToList();

    // A block of type declarations only (no top-level statements), such as a user's op and layer:
    // later blocks use its types, as a reader would have them in their project.
    private static bool DeclaresTypesOnly(string code)
    {
        var root = (Microsoft.CodeAnalysis.CSharp.Syntax.CompilationUnitSyntax)CSharpSyntaxTree.ParseText(code).GetRoot();
        return root.Members.Count > 0 && root.Members.All(m => m is not Microsoft.CodeAnalysis.CSharp.Syntax.GlobalStatementSyntax);
    }

    private static IReadOnlyList<string> Errors(string code, IEnumerable<string> typeBlocks)
    {
        var options = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = new List<SyntaxTree>
        {
            CSharpSyntaxTree.ParseText(UserUsings + code, options, path: "block.cs"),
            CSharpSyntaxTree.ParseText(Context, options, path: "context.cs"),
        };
        trees.AddRange(typeBlocks.Select((t, i) => CSharpSyntaxTree.ParseText(UserUsings + t, options, path: $"types{i}.cs")));
        bool program = !DeclaresTypesOnly(code);
        var compilation = CSharpCompilation.Create(
            "Readme",
            trees,
            References,
            new CSharpCompilationOptions(program ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        return compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error)
            .Select(d => d.ToString())
            .ToList();
    }

    public static TheoryData<int> BlockLines
    {
        get
        {
            var data = new TheoryData<int>();
            foreach (var (line, _) in Blocks())
                data.Add(line);
            return data;
        }
    }

    [Fact]
    public void The_README_has_csharp_blocks()
    {
        Assert.True(Blocks().Count >= 5, $"README.md has {Blocks().Count} csharp blocks");
    }

    [Theory]
    [MemberData(nameof(BlockLines))]
    public void Every_csharp_block_of_the_README_compiles_with_the_usings_a_user_writes(int line)
    {
        var blocks = Blocks();
        var code = blocks.Single(b => b.Line == line).Code;
        var typeBlocks = blocks.Where(b => b.Line != line && DeclaresTypesOnly(b.Code)).Select(b => b.Code);
        var errors = Errors(code, typeBlocks);
        Assert.True(errors.Count == 0, $"README.md block at line {line} does not compile:\n{string.Join("\n", errors.Take(10))}");
    }

    [Fact]
    public void A_block_that_does_not_compile_is_caught()
    {
        // The harness itself: a misspelt type, and the old name that clashed with ILGPU.Runtime.Device.
        Assert.NotEmpty(Errors("var d = ComputeDevic.Create();", []));
        Assert.Contains(Errors("using var d = Device.Create();", []), e => e.Contains("CS0117") || e.Contains("CS0104") || e.Contains("Device"));
        Assert.Empty(Errors("using var d = ComputeDevice.Create(DeviceKind.Cpu); var o = new CrossEntropyOptions { Epsilon = 0.1f };", []));
    }

    // DeviceOptions.Backend's type lived in IlgpuTrain.Kernels.Runtime, so the README's
    // "DeviceOptions { Kind = DeviceKind.Cpu, Backend = KernelBackend.CpuAccelerator }" failed with CS0103.
    [Fact]
    public void Device_options_compile_with_the_usings_a_user_writes()
    {
        Assert.Contains("Backend =\nKernelBackend.CpuAccelerator }", File.ReadAllText(Path.Combine(Root(), "README.md")).Replace("\r\n", "\n", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Empty(Errors("using var d = ComputeDevice.Create(new DeviceOptions { Kind = DeviceKind.Cpu, Backend = KernelBackend.CpuAccelerator }); KernelBackend b = d.Backend;", []));
    }

    [Fact]
    public void The_namespaces_a_user_imports_together_give_no_two_types_one_name()
    {
        var assemblies = new[]
        {
            typeof(ComputeDevice).Assembly, typeof(Tensor).Assembly, typeof(IlgpuTrain.Layers.Dense).Assembly,
            typeof(IlgpuTrain.Optimizers.Chain).Assembly, typeof(IlgpuTrain.Training.Trainer).Assembly, typeof(IlgpuTrain.Training.Plots).Assembly,
            typeof(KernelHost).Assembly, typeof(Accelerator).Assembly,
        }.Distinct();
        var clashes = assemblies
            .SelectMany(a => a.GetExportedTypes())
            .Where(t => !t.IsNested && t.Namespace is not null && UserNamespaces.Contains(t.Namespace))
            .GroupBy(t => t.Name.Split('`')[0])
            .Where(g => g.Select(t => t.Namespace).Distinct().Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(t => t.FullName))}")
            .ToList();
        Assert.True(clashes.Count == 0, "types that clash when these namespaces are imported together:\n" + string.Join("\n", clashes));
    }
}
