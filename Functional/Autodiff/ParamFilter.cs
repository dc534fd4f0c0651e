using System.Text.RegularExpressions;

namespace IlgpuTrain.Functional;

/// <summary>
/// Chooses parameters by path: which ones train and which stay frozen (fine-tuning), or which ones
/// a transformation touches. Patterns are globs over state_dict paths: <c>*</c> matches within one
/// path segment, <c>**</c> across segments, <c>?</c> one character; <c>**.</c> is zero or more whole
/// segments, so <c>"**.bias"</c> is every bias at any depth, a top-level <c>bias</c> included, and
/// <c>"layer1.**.weight"</c> takes <c>layer1.weight</c> too. Matching is case-sensitive.
/// </summary>
public sealed record ParamFilter
{
    private readonly Func<string, bool> _predicate;
    private readonly (string Glob, Regex Regex)[] _globs;

    private ParamFilter(string description, Func<string, bool> predicate, (string Glob, Regex Regex)[]? globs = null)
    {
        Description = description;
        _predicate = predicate;
        _globs = globs ?? [];
    }

    /// <summary>Every parameter.</summary>
    public static ParamFilter All { get; } = new("all", _ => true);

    /// <summary>No parameter.</summary>
    public static ParamFilter None { get; } = new("none", _ => false);

    /// <summary>How the filter was built, for messages (settable with <c>with</c>, which keeps the selection and the globs).</summary>
    public string Description { get; init; }

    /// <summary>
    /// The glob patterns the filter was built from, through <see cref="Not"/>, <see cref="Or"/> and
    /// the freezing filters too (empty for <see cref="Where"/>, <see cref="All"/> and <see cref="None"/>);
    /// <see cref="RequireMatches(ParamLayout, string)"/> checks each against a model.
    /// </summary>
    public IReadOnlyList<string> Globs => _globs.Select(g => g.Glob).ToArray();

    /// <summary>Parameters whose path matches any of the globs, such as <c>"0.*"</c> or <c>"**.bias"</c>.</summary>
    /// <param name="globs">Patterns.</param>
    /// <returns>The filter.</returns>
    public static ParamFilter Glob(params string[] globs)
    {
        ArgumentNullException.ThrowIfNull(globs);
        if (globs.Length == 0)
            throw new ArgumentException("ParamFilter.Glob needs at least one pattern, such as \"0.*\" or \"**.bias\".", nameof(globs));
        var compiled = globs.Select(g => (g, ToRegex(g))).ToArray();
        return new ParamFilter("glob " + string.Join(" | ", globs), p => compiled.Any(c => c.Item2.IsMatch(p)), compiled);
    }

    /// <summary>Parameters for which <paramref name="predicate"/> holds.</summary>
    /// <param name="description">What the predicate chooses, for messages.</param>
    /// <param name="predicate">The test on the path.</param>
    /// <returns>The filter.</returns>
    public static ParamFilter Where(string description, Func<string, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return new ParamFilter(description, predicate);
    }

    /// <summary>Whether the parameter at <paramref name="path"/> is chosen.</summary>
    /// <param name="path">A state_dict path.</param>
    /// <returns>True when chosen.</returns>
    public bool Matches(string path) => _predicate(path);

    /// <summary>The complement.</summary>
    /// <returns>A filter choosing what this one does not.</returns>
    public ParamFilter Not() => new("not (" + Description + ")", p => !_predicate(p), _globs);

    /// <summary>The union.</summary>
    /// <param name="other">Another filter.</param>
    /// <returns>A filter choosing what either chooses.</returns>
    public ParamFilter Or(ParamFilter other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new("(" + Description + ") or (" + other.Description + ")", p => _predicate(p) || other.Matches(p), [.. _globs, .. other._globs]);
    }

    /// <summary>The paths of <paramref name="layout"/> this filter chooses.</summary>
    /// <param name="layout">A layout.</param>
    /// <returns>The chosen paths, in layout order.</returns>
    public IReadOnlyList<string> Select(ParamLayout layout) => layout.Params.Select(p => p.Path).Where(Matches).ToList();

    /// <summary>
    /// Throws when one of <see cref="Globs"/> matches no parameter of <paramref name="layout"/>, so a
    /// misspelt path fails loudly instead of silently freezing (or training) nothing; the
    /// trainer, <c>Autodiff</c> (for <see cref="GradOptions.Trainable"/>) and <c>StateDict.Load</c>
    /// (for its Keep filter) check this before they use the filter.
    /// </summary>
    /// <param name="layout">The model's parameters (<c>parameters.Layout</c>).</param>
    /// <param name="context">Who uses the filter, for the message (e.g. "TrainerOptions.Trainable").</param>
    /// <exception cref="ArgumentException">A glob matches no path; the message lists the model's paths.</exception>
    public void RequireMatches(ParamLayout layout, string context)
    {
        ArgumentNullException.ThrowIfNull(layout);
        RequireMatches(layout, null, context);
    }

    /// <summary>As <see cref="RequireMatches(ParamLayout, string)"/>, over any list of paths (parameters and buffers together, say).</summary>
    /// <param name="paths">The paths the globs are meant for.</param>
    /// <param name="context">Who uses the filter, for the message.</param>
    /// <exception cref="ArgumentException">A glob matches no path.</exception>
    public void RequireMatches(IReadOnlyList<string> paths, string context)
    {
        ArgumentNullException.ThrowIfNull(paths);
        foreach (var (glob, regex) in _globs)
        {
            if (!paths.Any(regex.IsMatch))
                throw NoMatch(glob, paths, context);
        }
    }

    // The check Autodiff makes on every call: no allocation unless it fails (the message, "api:
    // option", is built then).
    internal void RequireMatches(ParamLayout layout, string? api, string option)
    {
        foreach (var (glob, regex) in _globs)
        {
            if (!AnyMatch(regex, layout.Params))
                throw NoMatch(glob, layout.Params.Select(p => p.Path).ToList(), api is null ? option : api + ": " + option);
        }
    }

    private static bool AnyMatch(Regex regex, IReadOnlyList<ParamInfo> parameters)
    {
        for (int i = 0; i < parameters.Count; i++)
        {
            if (regex.IsMatch(parameters[i].Path))
                return true;
        }

        return false;
    }

    private static ArgumentException NoMatch(string glob, IReadOnlyList<string> paths, string context) => new(
        $"{context}: the pattern \"{glob}\" matches no parameter; the model has {string.Join(", ", paths.Take(8))}{(paths.Count > 8 ? $", ... ({paths.Count} in all)" : string.Empty)}. "
        + "Spell the pattern after these state_dict paths (* stays within one segment, ** crosses segments, ? is one character).",
        "paths");

    /// <inheritdoc/>
    public override string ToString() => Description;

    private static Regex ToRegex(string glob)
    {
        if (string.IsNullOrWhiteSpace(glob))
            throw new ArgumentException("A parameter glob must not be empty; use \"**\" for every parameter.", nameof(glob));
        var sb = new System.Text.StringBuilder("^");
        for (int i = 0; i < glob.Length; i++)
        {
            char c = glob[i];
            if (c == '*' && i + 1 < glob.Length && glob[i + 1] == '*')
            {
                // "**." is zero or more whole segments, so "**.bias" also takes a top-level "bias"
                // (a lone Dense's parameters are "weight" and "bias") and "a.**.b" takes "a.b".
                if (i + 2 < glob.Length && glob[i + 2] == '.')
                {
                    sb.Append(@"(?:.*\.)?");
                    i += 2;
                }
                else
                {
                    sb.Append(".*");
                    i++;
                }
            }
            else if (c == '*')
            {
                sb.Append("[^.]*");
            }
            else if (c == '?')
            {
                sb.Append("[^.]");
            }
            else
            {
                sb.Append(Regex.Escape(c.ToString()));
            }
        }

        return new Regex(sb.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
