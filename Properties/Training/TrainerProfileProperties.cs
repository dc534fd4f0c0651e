using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Dropout = IlgpuTrain.Layers.Dropout;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// <see cref="TrainerOptions.Profile"/>: the trainer times the window of steps it is told to, op by op
/// and the work around the tape, and profiling changes no result.
/// </summary>
public class TrainerProfileProperties
{
    private static Layer Model() => new Flatten() >> new Dense(16) >> new ReLU() >> new Dropout(0.1f) >> new Dense(3);

    private static (TrainState State, Trainer Trainer) Fit(TrainerOptions options)
    {
        var data = TrainerProperties.Blobs(96, 3, 5);
        var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, new AdamW(1e-2), options);
        return (trainer.Fit(data).State, trainer);
    }

    [Fact]
    public void The_profile_times_its_window_of_steps_and_every_piece_of_a_step()
    {
        var profile = new StepProfile();
        // 96 samples in batches of 8: 12 steps per epoch, 24 in two; the window is steps 3 to 9 of the fit.
        var (state, _) = Fit(new TrainerOptions { Epochs = 2, BatchSize = 8, Seed = 2, WarmKernels = false, Profile = profile, ProfileSkip = 3, ProfileSteps = 7 });
        using (state)
        {
            Assert.Equal(24, state.Step);
        }

        Assert.Equal(7, profile.Steps);
        var ops = profile.Ops.ToDictionary(o => o.Op);
        foreach (var piece in new[] { "input (upload, augmentation)", "metrics and loss to host", "unscale and finite check", "optimizer", "data (waiting for the batch)", "progress and callbacks" })
        {
            Assert.True(ops.ContainsKey(piece), $"{piece} is missing from the profile: {string.Join(", ", ops.Keys)}");
            Assert.Equal(7, ops[piece].OtherCalls);
        }

        // The tape's ops, forward and backward, once per step each: the two Linear layers twice.
        Assert.Equal(14, ops["Linear"].ForwardCalls);
        Assert.Equal(14, ops["Linear"].BackwardCalls);
        Assert.Equal(7, ops["Dropout"].ForwardCalls);
        Assert.False(ops.ContainsKey("gradient all-reduce"), "one process all-reduces nothing");
        Assert.Contains("optimizer", profile.Table(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_window_past_the_end_of_the_fit_times_nothing_and_profiling_changes_no_result()
    {
        var profile = new StepProfile();
        var (plain, _) = Fit(new TrainerOptions { Epochs = 1, BatchSize = 8, Seed = 2, WarmKernels = false });
        var (timed, _) = Fit(new TrainerOptions { Epochs = 1, BatchSize = 8, Seed = 2, WarmKernels = false, Profile = profile, ProfileSkip = 0, ProfileSteps = 5 });
        var tail = new StepProfile();
        var (clipped, _) = Fit(new TrainerOptions { Epochs = 1, BatchSize = 8, Seed = 2, WarmKernels = false, Profile = tail, ProfileSkip = 9 });
        clipped.Dispose();
        var past = new StepProfile();
        var (late, _) = Fit(new TrainerOptions { Epochs = 1, BatchSize = 8, Seed = 2, WarmKernels = false, Profile = past, ProfileSkip = 12 });
        using (plain)
        using (timed)
        using (late)
        {
            var a = plain.Params.ToHost();
            var b = timed.Params.ToHost();
            Assert.Equal(a.Keys, b.Keys);
            foreach (var key in a.Keys)
                Assert.Equal(a[key].Data, b[key].Data);
            Assert.Equal(plain.History.Epochs[0].TrainLoss, timed.History.Epochs[0].TrainLoss);
        }

        Assert.Equal(5, profile.Steps);
        Assert.Equal(3, tail.Steps);                                                     // steps 9, 10 and 11 of 12: the window ends with the fit
        Assert.Equal(0, past.Steps);
        Assert.Empty(past.Ops);
    }

    [Theory]
    [InlineData(-1, 50, "ProfileSkip")]
    [InlineData(10, 0, "ProfileSteps")]
    public void Out_of_range_windows_are_refused_by_name(int skip, int steps, string name)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { Profile = new StepProfile(), ProfileSkip = skip, ProfileSteps = steps }.Validate());
        Assert.Equal(name, e.ParamName);
    }
}
