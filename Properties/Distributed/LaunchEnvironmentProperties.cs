using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>The launcher's environment (Open MPI, PMI, torchrun) read into rank, world size and local rank.</summary>
public class LaunchEnvironmentProperties
{
    private static readonly string[][] Conventions =
    [
        ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"],
        ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"],
        ["RANK", "WORLD_SIZE", "LOCAL_RANK"],
    ];

    private static Func<string, string?> Env(Dictionary<string, string> vars) => name => vars.TryGetValue(name, out var v) ? v : null;

    [Property(MaxTest = 100)]
    public Property Each_convention_reads_back_its_rank_size_and_local_rank() =>
        Prop.ForAll(Gen.Choose(1, 512).SelectMany(size => Gen.Choose(0, size - 1).SelectMany(rank => Gen.Choose(0, 15).SelectMany(local => Gen.Choose(0, 2).Select(c => (size, rank, local, c))))).ToArbitrary(), t =>
        {
            var names = Conventions[t.c];
            var vars = new Dictionary<string, string> { [names[0]] = $"{t.rank}", [names[1]] = $"{t.size}", [names[2]] = $"{t.local}" };
            var launch = LaunchEnvironment.Parse(Env(vars))!;
            return (launch.Rank == t.rank && launch.WorldSize == t.size && launch.LocalRank == t.local).Label($"{string.Join(",", vars)} -> {launch}");
        });

    [Fact]
    public void Open_mpi_wins_over_torchrun_and_nothing_set_is_a_single_process()
    {
        var both = new Dictionary<string, string> { ["OMPI_COMM_WORLD_RANK"] = "1", ["OMPI_COMM_WORLD_SIZE"] = "2", ["RANK"] = "0", ["WORLD_SIZE"] = "4" };
        Assert.Equal(new LaunchEnvironment(1, 2, 1, "OMPI_COMM_WORLD_*"), LaunchEnvironment.Parse(Env(both)));
        Assert.Null(LaunchEnvironment.Parse(Env([])));
    }

    [Theory]
    [InlineData("2", "2", "RANK=2 is not below WORLD_SIZE=2")]
    [InlineData("x", "2", "RANK=x is not a whole number")]
    [InlineData("-1", "2", "RANK=-1 is not a whole number")]
    [InlineData("0", "0", "WORLD_SIZE=0 is not a whole number of at least 1")]
    [InlineData("0", null, "but WORLD_SIZE is not")]
    public void A_bad_launch_is_refused_naming_the_variable(string rank, string? size, string expected)
    {
        var vars = new Dictionary<string, string> { ["RANK"] = rank };
        if (size is not null)
            vars["WORLD_SIZE"] = size;
        var e = Assert.Throws<DistributedException>(() => LaunchEnvironment.Parse(Env(vars)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
