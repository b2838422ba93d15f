package hflash.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import hflash.memory.DType;
import hflash.memory.KvCache;
import hflash.memory.KvCacheLayout;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;

/** Every rejection of the decode facade, with its message, and use after close. */
class BadInputTest {

  private static KvCache cache(int kvHeads) {
    KvCache c = KvCache.allocate(new KvCacheLayout(2, kvHeads, 4, 64, DType.F32, 32));
    c.append(0, new float[kvHeads * 4], new float[kvHeads * 4]);
    return c;
  }

  @Test
  void configurationErrors() {
    try (KvCache c = cache(6)) {
      var e = assertThrows(IllegalArgumentException.class, () -> DecodeAttention.create(c, 32));
      assertEquals("numHeads must be a multiple of numKvHeads: 32 % 6 != 0", e.getMessage());
      assertEquals("threads out of range [1, 1024]: 0",
          assertThrows(IllegalArgumentException.class, () -> DecodeAttention.create(c, 6, 0)).getMessage());
      assertEquals("scale must be finite and positive: NaN",
          assertThrows(IllegalArgumentException.class, () -> DecodeAttention.create(c, 6, 1, Float.NaN)).getMessage());
      assertThrows(IllegalArgumentException.class, () -> DecodeAttention.create(c, -6));
    }
  }

  @Test
  void callErrors() {
    try (KvCache c = cache(2); DecodeAttention att = DecodeAttention.create(c, 4)) {
      float[] q = new float[16];
      float[] out = new float[16];
      assertEquals("q length differs from numHeads*headDim: 15!=16",
          assertThrows(IllegalArgumentException.class, () -> att.decode(0, new float[15], out)).getMessage());
      assertEquals("out length differs from numHeads*headDim: 17!=16",
          assertThrows(IllegalArgumentException.class, () -> att.decode(0, q, new float[17])).getMessage());
      q[5] = Float.NaN;
      assertEquals("non-finite value at q[5]=NaN",
          assertThrows(IllegalArgumentException.class, () -> att.decode(0, q, out)).getMessage());
      q[5] = Float.POSITIVE_INFINITY;
      assertThrows(IllegalArgumentException.class, () -> att.decode(0, q, out));
      q[5] = 0;
      assertThrows(IndexOutOfBoundsException.class, () -> att.decode(2, q, out));
      assertThrows(IndexOutOfBoundsException.class, () -> att.decode(-1, q, out));
      assertEquals("keys out of range [0, 1]: 2 (layer=0)",
          assertThrows(IndexOutOfBoundsException.class, () -> att.decode(0, q, out, 2)).getMessage());
      assertThrows(IndexOutOfBoundsException.class, () -> att.decode(0, q, out, -1));
      assertThrows(NullPointerException.class, () -> att.decode(0, null, out));
      att.decode(0, q, out, 1); // still usable after rejections
      att.decode(1, q, out); // empty layer: zeros
    }
  }

  @Test
  void closedCacheAndClosedAttention() throws Exception {
    KvCache c = cache(2);
    DecodeAttention att = DecodeAttention.create(c, 4, 2);
    float[] q = new float[16];
    float[] out = new float[16];
    att.decode(0, q, out);
    c.close();
    var e = assertThrows(IllegalStateException.class, () -> att.decode(0, q, out));
    assertEquals(true, e.getMessage().startsWith("KvCache is closed"), e.getMessage());
    ExecutorService other = Executors.newSingleThreadExecutor();
    try {
      Future<?> f = other.submit(() -> att.decode(0, q, out));
      var ex = assertThrows(ExecutionException.class, f::get);
      assertEquals(IllegalStateException.class, ex.getCause().getClass());
    } finally {
      other.shutdown();
    }
    assertThrows(IllegalStateException.class, () -> DecodeAttention.create(c, 4));
    att.close();
    att.close(); // idempotent
    try (KvCache c2 = cache(2)) {
      DecodeAttention a2 = DecodeAttention.create(c2, 4, 2);
      a2.close();
      assertEquals(true, assertThrows(IllegalStateException.class, () -> a2.decode(0, q, out))
          .getMessage().startsWith("DecodeAttention is closed"));
    }
  }
}
