package hflash.bench;

import static jdk.incubator.vector.VectorOperators.ADD;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The streaming-read loop at 128, 256 and 512 bits in one JVM (each width its own static-final
 * species, so each compiles to SIMD): four independent accumulators, int-indexed 1 MiB blocks.
 * Only the probe needs every width at once; the kernels use one.
 */
final class VectorStreamReaders {

  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
  private static final VectorSpecies<Float> F128 = FloatVector.SPECIES_128;
  private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;
  private static final VectorSpecies<Float> F512 = FloatVector.SPECIES_512;
  private static final int BLOCK = 1 << 18; // floats: 1 MiB

  private VectorStreamReaders() {}

  static List<StreamReader> all() {
    return List.of(reader("vector-128", 128), reader("vector-256", 256), reader("vector-512", 512));
  }

  private static StreamReader reader(String name, int bits) {
    return new StreamReader() {
      @Override
      public String name() {
        return name;
      }

      @Override
      public double sum(MemorySegment seg, long off, long floatCount) {
        double total = 0;
        long done = 0;
        while (done < floatCount) {
          int n = (int) Math.min(BLOCK, floatCount - done);
          int bound = n - n % 64;
          long at = off + done * Float.BYTES;
          total += switch (bits) {
            case 128 -> block128(seg, at, bound);
            case 256 -> block256(seg, at, bound);
            default -> block512(seg, at, bound);
          };
          for (int i = bound; i < n; i++) {
            total += seg.get(F32_LE, at + (long) i * Float.BYTES);
          }
          done += n;
        }
        return total;
      }
    };
  }

  // three copies of one loop: the species must be a constant in each for C2 to vectorize it

  private static double block128(MemorySegment seg, long off, int n) {
    FloatVector s0 = FloatVector.zero(F128), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n; i += 16) {
      long at = off + (long) i * Float.BYTES;
      s0 = s0.add(FloatVector.fromMemorySegment(F128, seg, at, LE));
      s1 = s1.add(FloatVector.fromMemorySegment(F128, seg, at + 16, LE));
      s2 = s2.add(FloatVector.fromMemorySegment(F128, seg, at + 32, LE));
      s3 = s3.add(FloatVector.fromMemorySegment(F128, seg, at + 48, LE));
    }
    return s0.add(s1).add(s2.add(s3)).reduceLanes(ADD);
  }

  private static double block256(MemorySegment seg, long off, int n) {
    FloatVector s0 = FloatVector.zero(F256), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n; i += 32) {
      long at = off + (long) i * Float.BYTES;
      s0 = s0.add(FloatVector.fromMemorySegment(F256, seg, at, LE));
      s1 = s1.add(FloatVector.fromMemorySegment(F256, seg, at + 32, LE));
      s2 = s2.add(FloatVector.fromMemorySegment(F256, seg, at + 64, LE));
      s3 = s3.add(FloatVector.fromMemorySegment(F256, seg, at + 96, LE));
    }
    return s0.add(s1).add(s2.add(s3)).reduceLanes(ADD);
  }

  private static double block512(MemorySegment seg, long off, int n) {
    FloatVector s0 = FloatVector.zero(F512), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n; i += 64) {
      long at = off + (long) i * Float.BYTES;
      s0 = s0.add(FloatVector.fromMemorySegment(F512, seg, at, LE));
      s1 = s1.add(FloatVector.fromMemorySegment(F512, seg, at + 64, LE));
      s2 = s2.add(FloatVector.fromMemorySegment(F512, seg, at + 128, LE));
      s3 = s3.add(FloatVector.fromMemorySegment(F512, seg, at + 192, LE));
    }
    return s0.add(s1).add(s2.add(s3)).reduceLanes(ADD);
  }
}
