package hflash.ascend;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * How much a prediction moves when one assumed parameter is halved or doubled (the others kept):
 * the sweep behind {@code hflash ascend --sweep} and the sensitivity table of docs/ascend.md.
 */
public final class Sensitivity {

  /** One row: the parameter, its value, and the predicted time at half, base and double value. */
  public record Row(String name, double value, double halfUs, double baseUs, double doubleUs,
      String halfBound, String doubleBound) {

    /** Largest relative change of the prediction, either way. */
    public double swing() {
      return Math.max(Math.abs(halfUs / baseUs - 1), Math.abs(doubleUs / baseUs - 1));
    }
  }

  private Sensitivity() {}

  /** Sweeps every assumed parameter through {@code model} (a prediction for given parameters). */
  public static List<Row> sweep(AscendParams base, Function<AscendParams, AscendModel.Prediction> model) {
    AscendModel.Prediction b = model.apply(base);
    List<Row> rows = new ArrayList<>();
    for (AscendParams.Param p : base.assumed()) {
      AscendModel.Prediction lo = model.apply(base.with(p.name(), p.value() / 2));
      AscendModel.Prediction hi = model.apply(base.with(p.name(), p.value() * 2));
      rows.add(new Row(p.name(), p.value(), lo.predictedUs(), b.predictedUs(), hi.predictedUs(),
          lo.bound(), hi.bound()));
    }
    return rows;
  }
}
