using System.Text.RegularExpressions;
using IlgpuTrain.Cli;

namespace IlgpuTrain.Properties;

/// <summary>
/// Every <c>ilgpu-train</c> command of README.md (<c>dotnet run -c Release --project Cli -- ...</c> in its bash
/// blocks, continuation lines joined, comments dropped, quotes as the shell reads them) parses with the CLI's
/// own parser: no unknown option, no missing value, no unknown command. Running them is left to the tests of
/// each command, with small data.
/// </summary>
public sealed partial class ReadmeCommandProperties
{
    private const string Prefix = "dotnet run -c Release --project Cli -- ";

    [GeneratedRegex(@"^```bash\s*\n(.*?)^```", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex BashBlock();

    /// <summary>The README's commands, each as the argument list the shell passes, with its line.</summary>
    public static IReadOnlyList<(int Line, string[] Args)> Commands()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "IlgpuTrain.sln")))
            dir = dir.Parent;
        Assert.True(dir is not null, $"no IlgpuTrain.sln above {AppContext.BaseDirectory}");
        string text = File.ReadAllText(Path.Combine(dir!.FullName, "README.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        var result = new List<(int, string[])>();
        foreach (Match m in BashBlock().Matches(text))
        {
            int line = text[..m.Groups[1].Index].Count(c => c == '\n') + 1;
            string joined = m.Groups[1].Value.Replace("\\\n", " ", StringComparison.Ordinal);
            foreach (var raw in joined.Split('\n'))
            {
                string cmd = raw.Trim();
                if (cmd.StartsWith(Prefix, StringComparison.Ordinal))
                    result.Add((line, Words(cmd[Prefix.Length..])));
                line += 1 + raw.Count(c => c == '\\');
            }
        }

        return result;
    }

    // Shell words: whitespace-separated, single and double quotes grouping, a # outside quotes starting a comment.
    internal static string[] Words(string command)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        bool inWord = false;
        char quote = '\0';
        foreach (char c in command)
        {
            if (quote != '\0')
            {
                if (c == quote)
                    quote = '\0';
                else
                    word.Append(c);
                continue;
            }

            if (c is '\'' or '"')
            {
                quote = c;
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                    words.Add(word.ToString());
                word.Clear();
                inWord = false;
            }
            else if (c == '#' && !inWord)
            {
                break;
            }
            else
            {
                word.Append(c);
                inWord = true;
            }
        }

        if (inWord)
            words.Add(word.ToString());
        return [.. words];
    }

    [Fact]
    public void The_README_has_commands_of_every_kind()
    {
        var names = Commands().Select(c => c.Args[0]).ToHashSet();
        foreach (var command in new[] { "train", "evaluate", "predict", "export", "diagnose", "find-lr", "find-batch-size", "bench", "check" })
            Assert.Contains(command, names);
    }

    [Fact]
    public void Every_command_of_the_README_parses()
    {
        var problems = new List<string>();
        foreach (var (line, args) in Commands())
        {
            var parsed = CliApp.Root().Parse(args);
            if (parsed.Errors.Count > 0)
                problems.Add($"README.md line {line}: ilgpu-train {string.Join(' ', args)}: {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void A_misspelt_option_or_command_is_caught()
    {
        Assert.Equal(["train", "--freeze", "conv1.*,layer*.**", "--lr", "1e-3"], Words("train --freeze 'conv1.*,layer*.**' --lr 1e-3   # a comment"));
        Assert.NotEmpty(CliApp.Root().Parse(Words("train --frezee 'fc.*'")).Errors);
        Assert.NotEmpty(CliApp.Root().Parse(Words("trian --epochs 2")).Errors);
        Assert.NotEmpty(CliApp.Root().Parse(Words("train --epochs")).Errors);
    }
}
