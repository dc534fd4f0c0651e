using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>CSV data sets: columns by name, classes in sorted order, standardization from the training split, and bad files named with their line and column.</summary>
public class CsvDatasetProperties
{
    private static string Write(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"ilgpu-csv-{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, text);
        return path;
    }

    private static void With(string text, Action<string> check)
    {
        string path = Write(text);
        try
        {
            check(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Features_and_targets_come_from_the_named_columns_in_order()
    {
        With("a,b,y,c\n1,2,3,4\n5,6,7.5,8\n", path =>
        {
            var all = CsvDataset.Load(path, ["y"]);
            Assert.Equal(["a", "b", "c"], all.FeatureNames);
            Assert.Equal([1f, 2f, 4f, 5f, 6f, 8f], all.Features.ToArray());
            Assert.Equal([3f, 7.5f], all.Targets.ToArray());
            Assert.Equal(new Shape(1), all.TargetShape);
            Assert.Equal(0, all.Classes);
            var two = CsvDataset.Load(path, ["c", "y"], ["b"]);
            Assert.Equal([2f, 6f], two.Features.ToArray());
            Assert.Equal([4f, 3f, 8f, 7.5f], two.Targets.ToArray());
        });
    }

    [Fact]
    public void Class_labels_are_numbered_in_sorted_order_numeric_for_integers()
    {
        With("x,kind\n1,cat\n2,ant\n3,dog\n4,cat\n", path =>
        {
            var d = CsvDataset.LoadClassification(path, "kind");
            Assert.Equal(["ant", "cat", "dog"], d.ClassNames);
            Assert.Equal([1, 0, 2, 1], d.Labels.ToArray());
            Assert.Equal(new Shape(0), d.TargetShape);
        });
        With("x,label\n1,10\n2,9\n3,-1\n", path =>
        {
            var d = CsvDataset.LoadClassification(path, "label");
            Assert.Equal(["-1", "9", "10"], d.ClassNames);
            Assert.Equal([2, 1, 0], d.Labels.ToArray());
        });
    }

    [Fact]
    public void Standardization_uses_the_training_split_population_std_and_maps_a_constant_column_to_zero()
    {
        var train = new TabularDataset("t", [1, 5, 3, 5, 5, 5], ["a", "b"], [0, 0, 0], ["y"]);
        var scaler = Standardization.Fit(train);
        // a = 1, 3, 5: mean 3, population std sqrt(8/3) (numpy.std, StandardScaler); b constant: std 1.
        Assert.Equal([3.0, 5.0], scaler.Mean);
        Assert.Equal(Math.Sqrt(8.0 / 3), scaler.Std[0], 12);
        Assert.Equal(1.0, scaler.Std[1]);
        var val = new TabularDataset("v", [7, 5], ["a", "b"], [0], ["y"]).Standardize(scaler);
        Assert.Equal((float)(4 / Math.Sqrt(8.0 / 3)), val.Features[0], 5);
        Assert.Equal(0f, val.Features[1]);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a,b,y\n", "no rows")]
    [InlineData("a,b,z\n1,2,3\n", "line 1 (the header): no target column \"y\"")]
    [InlineData("a,b,y\n1,2,3\n4,5\n", "line 3: 2 cell(s), but the header has 3 columns")]
    [InlineData("a,b,y\n1,2,3\n4,5,6,7\n", "line 3: 4 cell(s)")]
    [InlineData("a,b,y\n1,2,3\n4,five,6\n", "line 3, column \"b\": \"five\" is not a finite number")]
    [InlineData("a,b,y\n1,2,3\n4,5,nan\n", "line 3, column \"y\": \"nan\"")]
    public void A_bad_file_is_refused_naming_the_file_line_and_column(string text, string expected)
    {
        With(text, path =>
        {
            var e = Assert.Throws<InvalidDataException>(() => CsvDataset.Load(path, ["y"]));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void A_missing_file_or_feature_column_is_refused()
    {
        Assert.Throws<FileNotFoundException>(() => CsvDataset.Load("/nonexistent/data.csv", ["y"]));
        With("a,y\n1,2\n", path =>
        {
            var e = Assert.Throws<InvalidDataException>(() => CsvDataset.Load(path, ["y"], ["a", "q"]));
            Assert.Contains("no feature column \"q\"; the columns are a, y", e.Message, StringComparison.Ordinal);
        });
    }
}
