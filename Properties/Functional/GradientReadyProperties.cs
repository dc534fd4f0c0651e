namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// <see cref="GradOptions.GradientReady"/>: during the backward each Float32 parameter is reported
/// exactly once, and at that moment its gradient slot already holds its final value (a weight read
/// by two layers only after its earliest reader's VJP; a frozen, an unread and a disconnected
/// parameter as zeros, even over a recycled pool buffer); the last layer's gradients come before
/// the first layer's; and the gradients are the same bits as without an observer.
/// </summary>
public class GradientReadyProperties
{
    [Property(MaxTest = 12)]
    public Property Every_parameter_is_reported_once_when_its_gradient_slot_holds_its_final_value() =>
        Prop.ForAll(Gen.Choose(0, 10000).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (seed, freeze) =>
        {
            var d = Devices.Cpu;
            using var p = ParamTree.FromHost(d, new (string Name, int[] Shape)[]
            {
                ("0.weight", [6, 6]), ("0.bias", [6]), ("1.weight", [6, 6]), ("unread", [5]), ("2.weight", [3, 6]), ("2.bias", [3]), ("detached", [6]),
            }.Select((e, i) => KeyValuePair.Create(e.Name, (e.Shape, GradCheck.Values(seed + i, e.Shape.Aggregate(1, (a, b) => a * b))))));
            var x = GradCheck.Values(seed + 50, 24);
            var trainable = freeze ? ParamFilter.Glob("0.*", "1.*", "2.*") : null;

            // 0.weight is read by the first and the third hidden layer; "detached" feeds a value the loss never reads.
            Tensor Loss(Params q, StepScope s)
            {
                _ = F.Mul(q["detached"], q["detached"]);
                var h = F.Tanh(F.Linear(s.Upload(x, new Shape(4, 6)), q["0.weight"], q["0.bias"]));
                h = F.Tanh(F.Linear(h, q["1.weight"]));
                h = F.Tanh(F.Linear(h, q["0.weight"]));
                return F.Mean(F.Sigmoid(F.Linear(h, q["2.weight"], q["2.bias"])));
            }

            float[] Plain()
            {
                using var step = d.BeginStep();
                var (_, g) = Autodiff.ValueAndGrad(step, p, q => Loss(q, step), new GradOptions { Trainable = trainable });
                using (g)
                    return Transfer.ToHost(d.Stream, g.Flat32);
            }

            var plain = Plain();
            var observer = new Recorder(d);
            float[] observed;
            using (var step = d.BeginStep())
            {
                var (_, g) = Autodiff.ValueAndGrad(step, p, q => Loss(q, step), new GradOptions { Trainable = trainable, GradientReady = observer });
                using (g)
                    observed = Transfer.ToHost(d.Stream, g.Flat32);
            }

            var order = observer.Order.Select(r => r.Param.Path).ToList();
            var early = observer.Order.Where(r => !r.Slot.AsSpan().SequenceEqual(observed.AsSpan((int)r.Param.Offset, (int)r.Param.Length))).Select(r => r.Param.Path).ToList();
            return plain.AsSpan().SequenceEqual(observed).Label("the same gradients with an observer")
                .And(order.Order(StringComparer.Ordinal).SequenceEqual(p.Layout.Params.Select(q => q.Path).Order(StringComparer.Ordinal))).Label($"each parameter once: {string.Join(", ", order)}")
                .And(early.Count == 0).Label($"reported before final: {string.Join(", ", early)}")
                .And(order.IndexOf("2.weight") < order.IndexOf("1.weight") && order.IndexOf("1.weight") < order.IndexOf("0.weight")).Label($"last layer first: {string.Join(", ", order)}")
                .And(observer.Progressed > 0).Label("progress driven")
                .And(new[] { "unread", "detached" }.All(n => observed.AsSpan((int)p.Layout[n].Offset, (int)p.Layout[n].Length).IndexOfAnyExcept(0f) < 0)).Label("zeros for the parameters without a gradient");
        });

    private sealed class Recorder(Device device) : IGradientReadyObserver
    {
        public List<(ParamInfo Param, float[] Slot)> Order { get; } = new();

        public int Progressed { get; private set; }

        public void Ready(ParamTree gradients, ParamInfo parameter)
        {
            device.Synchronize();
            Order.Add((parameter, Transfer.ToHost(device.Stream, gradients.Flat32.SubView(parameter.Offset, parameter.Length))));
        }

        public void Progress() => Progressed++;
    }
}
