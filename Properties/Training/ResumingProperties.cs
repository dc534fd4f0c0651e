using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// When a checkpoint may continue a run: same model and data set, the same optimizer and gradient
/// accumulation (they shape the optimizer state), and the same epochs unless both runs use the
/// constant schedule; where the run reads and writes never matters.
/// </summary>
public class ResumingProperties
{
    private static readonly Gen<RunConfig> Configs =
        from model in Gen.Elements(Models.Names.ToArray())
        from dataset in Gen.Elements(Recipes.Datasets.ToArray())
        from schedule in Gen.Elements(Recipes.Schedules.ToArray())
        from epochs in Gen.Choose(1, 4)
        from lr in Gen.Elements(1e-3, 3e-3)
        from optimizer in Gen.Elements("adamw", "adamw", "adamw", "sgd")
        from accumulate in Gen.Elements(1, 1, 1, 2, 4)
        select new RunConfig { Model = model, Dataset = dataset, Schedule = schedule, Epochs = epochs, LearningRate = lr, Optimizer = optimizer, Accumulate = accumulate };

    [Property(MaxTest = 300)]
    public Property A_checkpoint_continues_a_run_of_the_same_model_and_data_and_a_length_its_schedule_allows() =>
        Prop.ForAll(Configs.ToArbitrary(), Configs.ToArbitrary(), (stored, run) =>
        {
            bool sameModel = stored.Model == run.Model && stored.Dataset == run.Dataset;
            bool lengthOk = stored.Epochs == run.Epochs || (stored.Schedule == "constant" && run.Schedule == "constant");
            bool sameOptimizer = stored.Optimizer == run.Optimizer, sameAccumulate = stored.Accumulate == run.Accumulate;
            string? why = Resuming.Incompatibility(stored, run);
            return (why is null == (sameModel && lengthOk && sameOptimizer && sameAccumulate)).Label($"incompatibility: {why ?? "none"}")
                .And((why is null || sameModel || (why.Contains(stored.Model, StringComparison.Ordinal) && why.Contains(run.Dataset, StringComparison.Ordinal))).Label("names both runs"))
                .And((why is null || !sameModel || lengthOk || why.Contains($"--epochs {stored.Epochs}", StringComparison.Ordinal)).Label("names the epochs that fit"))
                .And((why is null || !sameModel || !lengthOk || sameOptimizer || why.Contains($"--optimizer {stored.Optimizer}", StringComparison.Ordinal)).Label("names the optimizer to resume with"))
                .And((why is null || !sameModel || !lengthOk || !sameOptimizer || sameAccumulate || why.Contains($"--accumulate {stored.Accumulate}", StringComparison.Ordinal)).Label("names the accumulation to resume with"));
        });

    [Property(MaxTest = 100)]
    public Property Only_training_options_count_as_a_change() =>
        Prop.ForAll(Configs.ToArbitrary(), Gen.Choose(1, 9).ToArbitrary(), (c, epochs) =>
        {
            var moved = c with { Epochs = epochs, Output = "elsewhere", Device = "cpu", DataDir = "/data" };
            return (!Resuming.OptionsDiffer(c, moved)).Label("epochs, output, device and data folder")
                .And(Resuming.OptionsDiffer(c, moved with { LearningRate = c.LearningRate * 2 }).Label("learning rate"))
                .And(Resuming.OptionsDiffer(c, moved with { BatchSize = c.BatchSize + 1 }).Label("batch size"));
        });

    [Fact]
    public void A_missing_checkpoint_or_one_without_a_run_configuration_is_refused_by_path()
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-resume-").FullName;
        try
        {
            string missing = Path.Combine(dir, "none.safetensors");
            var trainer = new Trainer(Devices.Cpu, Models.Mlp(10), new Shape(1, 28, 28), Recipes.Optimizer(new RunConfig(), 10));
            var e = Assert.Throws<FileNotFoundException>(() => Resuming.Resume(missing, Devices.Cpu, trainer, Recipes.Optimizer(new RunConfig(), 10), new RunConfig(), NullProgress.Instance));
            Assert.Contains(missing, e.Message);

            string bare = Path.Combine(dir, "bare.safetensors");
            SafeTensors.Save(bare, [], new Dictionary<string, string>());
            var b = Assert.Throws<CheckpointFormatException>(() => Resuming.ReadConfig(bare));
            Assert.Contains(bare, b.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
