using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// ParamFilter's glob dialect against a reference matcher over path segments: <c>*</c> and
/// <c>?</c> stay within a segment, a <c>**</c> segment is zero or more segments (one or more at
/// the end, so <c>"fc.**"</c> is what lies inside fc).
/// </summary>
public class ParamFilterProperties
{
    // Flat, nested and top-level paths (a lone layer's parameters are "weight" and "bias").
    private static readonly string[] Paths =
        ["weight", "bias", "0.weight", "0.bias", "bn1.bias", "fc.weight", "fc.bias", "layer1.weight", "layer1.0.bn1.bias", "layer1.0.conv1.weight", "layer1.1.downsample.0.weight", "blocks.10.norm.weight"];

    [Property(MaxTest = 300)]
    public Property Glob_selects_what_a_segment_matcher_selects() =>
        Prop.ForAll(Gens.ParamGlob.ToArbitrary(), pattern =>
        {
            var filter = ParamFilter.Glob(pattern);
            var wrong = Paths.Where(p => filter.Matches(p) != Reference(pattern.Split('.'), p.Split('.'))).ToList();
            return (wrong.Count == 0).Label($"{pattern}: disagrees with the reference on [{string.Join(", ", wrong)}]");
        });

    [Fact]
    public void Double_star_dot_takes_top_level_parameters_of_a_lone_layer()
    {
        var (p, s) = new Dense(3).Init(Devices.Cpu, new Shape(2), Rng.Create(0));
        using (p)
        using (s)
        {
            Assert.Equal(["weight", "bias"], p.Layout.Params.Select(x => x.Path));
            Assert.Equal(["bias"], ParamFilter.Glob("**.bias").Select(p.Layout));
            Assert.True(Freezing.Frozen("**.bias").Matches("weight"));
            Assert.False(Freezing.Frozen("**.bias").Matches("bias"));
        }

        Assert.True(ParamFilter.Glob("layer1.**.weight").Matches("layer1.weight"));
        Assert.False(ParamFilter.Glob("fc.**").Matches("fc"));
    }

    // A misspelt glob selects nothing: freezing nothing (or everything) silently is the fine-tuning
    // mistake that costs a whole run, so the filter names the pattern and the model's paths.
    [Fact]
    public void A_glob_that_matches_no_parameter_fails_naming_it_through_not_or_and_autodiff()
    {
        var layout = new ParamLayout(Paths.Select(p => (p, new Shape(2), DType.Float32)));
        ParamFilter.Glob("fc.*", "**.bias").RequireMatches(layout, "test");
        Freezing.Frozen("layer1.**").RequireMatches(layout, "test");
        ParamFilter.Where("predicate", _ => false).RequireMatches(layout, "test");
        Assert.Equal(["fc.*", "head.*"], ParamFilter.Glob("fc.*").Or(Freezing.TrainableOnly("head.*")).Globs);
        foreach (var filter in new[] { ParamFilter.Glob("fc.*", "head.*"), Freezing.Frozen("head.*"), Freezing.TrainableOnly("head.*"), ParamFilter.Glob("fc.*").Or(ParamFilter.Glob("head.*").Not()) })
        {
            var e = Assert.Throws<ArgumentException>(() => filter.RequireMatches(layout, "test"));
            Assert.Contains("\"head.*\" matches no parameter", e.Message);
            Assert.Contains("fc.weight", e.Message);
        }

        Assert.Equal("all but head.*", Freezing.Frozen("head.*").Description);
        var (p, s) = (new Dense(3) >> new Dense(2)).Init(Devices.Cpu, new Shape(2), Rng.Create(0));
        using (p)
        using (s)
        using (var step = Devices.Cpu.BeginStep())
        {
            var x = step.Upload([1f, 2f], new Shape(1, 2));
            var e = Assert.Throws<ArgumentException>(() => Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Linear(x, q["0.weight"], q["0.bias"])), Freezing.Frozen("layer0.*").AsGradOptions()));
            Assert.Contains("GradOptions.Trainable: the pattern \"layer0.*\" matches no parameter; the model has 0.weight, 0.bias, 1.weight, 1.bias", e.Message);
            var (_, grads) = Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Linear(x, q["0.weight"], q["0.bias"])), Freezing.Frozen("1.*").AsGradOptions());
            grads.Dispose();
        }
    }

    // A pattern's segments against a path's: "**" is any number of segments (at least one when
    // it ends the pattern); other segments match one path segment character by character.
    private static bool Reference(ReadOnlySpan<string> pattern, ReadOnlySpan<string> path)
    {
        if (pattern.Length == 0)
            return path.Length == 0;
        if (pattern[0] == "**")
        {
            int least = pattern.Length == 1 ? 1 : 0;
            for (int k = least; k <= path.Length; k++)
            {
                if (Reference(pattern[1..], path[k..]))
                    return true;
            }

            return false;
        }

        return path.Length > 0 && SegmentMatches(pattern[0], path[0]) && Reference(pattern[1..], path[1..]);
    }

    private static bool SegmentMatches(string pattern, string segment)
    {
        if (pattern.Length == 0)
            return segment.Length == 0;
        if (pattern[0] == '*')
        {
            for (int k = 0; k <= segment.Length; k++)
            {
                if (SegmentMatches(pattern[1..], segment[k..]))
                    return true;
            }

            return false;
        }

        return segment.Length > 0 && (pattern[0] == '?' || pattern[0] == segment[0]) && SegmentMatches(pattern[1..], segment[1..]);
    }
}
