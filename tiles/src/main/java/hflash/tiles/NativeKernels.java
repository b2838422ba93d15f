package hflash.tiles;

import java.io.IOException;
import java.io.InputStream;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * The optional native decode kernel ({@code libhflash.so}, built from {@code tiles/src/main/c} by the
 * tiles module's build and packaged in its jar): found, extracted and loaded once per JVM, its
 * variant chosen by CPU features, and one log line when it is not used. Nothing here ever fails
 * hard: without the library the Java kernels run.
 *
 * <p>System properties:
 *
 * <ul>
 *   <li>{@code hflash.native} = {@code true} (default: the best variant this CPU runs),
 *       {@code false} (never load it: the Java kernels only), or a variant name ({@code avx2},
 *       {@code avx512}) to force one the CPU supports. Anything else throws
 *       {@link IllegalArgumentException}.
 *   <li>{@code hflash.native.library} = a path to a {@code libhflash*.so} to load instead of the
 *       packaged one (the AddressSanitizer script uses it).
 *   <li>{@code hflash.native.prefetchK}, {@code hflash.native.prefetchV} = software prefetch
 *       distance in bytes along the K and V streams (default {@value #DEFAULT_PREFETCH}; 0 = off).
 * </ul>
 *
 * <p>The downcalls are {@linkplain Linker.Option#critical(boolean) critical} with heap access: the
 * query, the state and the scratch are the engine's float arrays, passed without a copy. A
 * critical call holds off the garbage collector while it runs, so callers keep each call short:
 * the engine passes at most {@link #MAX_KEYS_PER_CALL} keys per call (well under a millisecond).
 */
public final class NativeKernels {

  /** Name of the switch property. */
  public static final String PROPERTY = "hflash.native";

  /** Name of the library-path override property. */
  public static final String LIBRARY_PROPERTY = "hflash.native.library";

  /** Default software prefetch distance in bytes (both streams). */
  public static final long DEFAULT_PREFETCH = 4096;

  /** Keys per downcall the engine stays under: bounds the GC hold-off of a critical call. */
  public static final int MAX_KEYS_PER_CALL = 8192;

  private static final String RESOURCE = "/hflash/native/linux-x86_64/libhflash.so";
  private static final String ABI_SYMBOL = "hflash_native_abi";
  private static final int ABI = 3;
  private static final System.Logger LOG = System.getLogger(NativeKernels.class.getName());

  /** A loaded variant: its name and the downcall handle of its decode-tiles entry point. */
  public record Variant(String name, MethodHandle decodeTiles) {}

  private NativeKernels() {}

  /**
   * The variant this JVM uses, or empty (the Java kernels run); see {@link #status()} for why.
   */
  public static Optional<Variant> variant() {
    return Optional.ofNullable(Holder.CHOSEN);
  }

  /**
   * Every variant the library has that this CPU can run (for the tests, which hold each one to
   * the Java kernels), in the order avx2, avx512; empty without the library.
   */
  public static List<Variant> runnable() {
    return Holder.RUNNABLE;
  }

  /**
   * One line for reports: {@code "avx512 (/tmp/...libhflash.so)"} when loaded, else
   * {@code "none: <reason>"}.
   */
  public static String status() {
    return Holder.CHOSEN != null ? Holder.CHOSEN.name() + " (" + Holder.PATH + ")" : "none: " + Holder.REASON;
  }

  /** Why no variant is used, or null when one is. */
  public static String reason() {
    return Holder.CHOSEN != null ? null : Holder.REASON;
  }

  /** The prefetch distance property {@code name}, in bytes (>= 0), default {@link #DEFAULT_PREFETCH}. */
  static long prefetch(String name) {
    String raw = System.getProperty(name);
    if (raw == null || raw.isBlank()) {
      return DEFAULT_PREFETCH;
    }
    try {
      long v = Long.parseLong(raw.trim());
      if (v >= 0) {
        return v;
      }
    } catch (NumberFormatException e) {
      // falls through to the message below
    }
    throw new IllegalArgumentException(name + " must be a byte count >= 0: " + raw);
  }

  /** The C entry point's dtype code: the {@link TileEncoding} ordinal (f32 0, bf16 1, f16 2, q8_0 3, q4_0 4). */
  static int dtypeCode(TileEncoding t) {
    return t.ordinal();
  }

  private static final class Holder {
    static String REASON = "not loaded";
    static Path PATH;
    static final List<Variant> RUNNABLE;
    static final Variant CHOSEN;

    static {
      List<Variant> runnable = new ArrayList<>();
      Variant chosen = null;
      String raw = System.getProperty(PROPERTY, "true").trim().toLowerCase(Locale.ROOT);
      if (!raw.equals("true") && !raw.equals("false") && !raw.equals("avx2") && !raw.equals("avx512")) {
        throw new IllegalArgumentException(PROPERTY + " must be true, false, avx2 or avx512: " + raw);
      }
      if (raw.equals("false")) {
        REASON = PROPERTY + "=false";
      } else {
        try {
          runnable = load();
          if (runnable.isEmpty()) {
            REASON = "the CPU has none of the library's variants (needs AVX2+FMA+F16C or AVX-512)";
          } else if (raw.equals("true")) {
            chosen = runnable.getLast();
          } else {
            for (Variant v : runnable) {
              if (v.name().equals(raw)) {
                chosen = v;
              }
            }
            if (chosen == null) {
              REASON = PROPERTY + "=" + raw + " but this CPU runs only " + runnable.stream().map(Variant::name).toList();
            }
          }
        } catch (Throwable t) { // never fatal: any failure to find, extract, link or call selects the Java path
          runnable = List.of();
          REASON = t.getClass().getSimpleName() + ": " + t.getMessage();
        }
      }
      RUNNABLE = List.copyOf(runnable);
      CHOSEN = chosen;
      if (chosen == null) {
        LOG.log(Level.INFO, "native decode kernel not used (" + REASON + "); the Java kernels run");
      } else {
        LOG.log(Level.DEBUG, "native decode kernel " + chosen.name() + " from " + PATH);
      }
    }

    private static List<Variant> load() throws IOException {
      String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
      String arch = System.getProperty("os.arch", "");
      String override = System.getProperty(LIBRARY_PROPERTY);
      Path lib;
      if (override != null && !override.isBlank()) {
        lib = Path.of(override.trim());
        if (!Files.isReadable(lib)) {
          REASON = LIBRARY_PROPERTY + " names no readable file: " + lib;
          return List.of();
        }
      } else {
        if (!os.startsWith("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
          REASON = "no native variants for " + os + "-" + arch;
          return List.of();
        }
        lib = extract();
        if (lib == null) {
          REASON = "the tiles jar holds no " + RESOURCE + " (built without a C compiler?)";
          return List.of();
        }
      }
      PATH = lib;
      Linker linker = Linker.nativeLinker();
      // the library stays loaded for the life of the JVM, like the classes that call it
      SymbolLookup lookup = SymbolLookup.libraryLookup(lib, Arena.global());
      if (override == null || override.isBlank()) {
        // Linux keeps the mapping of an unlinked library: removing the extracted copy now leaves no
        // file behind even when the JVM ends without running its exit hooks (killed, halted)
        Files.deleteIfExists(lib);
      }
      int abi = (int) invokeInt(linker, lookup, ABI_SYMBOL);
      if (abi != ABI) {
        REASON = lib + " has ABI " + abi + ", this code expects " + ABI;
        return List.of();
      }
      int isa = (int) invokeInt(linker, lookup, "hflash_native_isa");
      FunctionDescriptor fd = FunctionDescriptor.of(ValueLayout.JAVA_INT,
          ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, // dtype d g T
          ValueLayout.ADDRESS, ValueLayout.JAVA_INT, // q qOff
          ValueLayout.ADDRESS, ValueLayout.ADDRESS, // k v
          ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, // offsets counts n
          ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, // m l mOff
          ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, // acc accOff scratch
          ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG); // pfk pfv
      List<Variant> out = new ArrayList<>();
      String[] names = {"avx2", "avx512"};
      for (int i = 0; i < names.length; i++) {
        if ((isa & (1 << i)) != 0) {
          String symbol = "hflash_decode_tiles_" + names[i];
          MemorySegment sym = lookup.find(symbol).orElseThrow(
              () -> new IllegalStateException(lib + " lacks " + symbol));
          out.add(new Variant(names[i], linker.downcallHandle(sym, fd, Linker.Option.critical(true))));
        }
      }
      return out;
    }

    private static long invokeInt(Linker linker, SymbolLookup lookup, String name) {
      MemorySegment sym = lookup.find(name).orElseThrow(
          () -> new IllegalStateException("libhflash.so lacks " + name));
      try {
        return (int) linker.downcallHandle(sym, FunctionDescriptor.of(ValueLayout.JAVA_INT)).invokeExact();
      } catch (Throwable t) {
        throw new IllegalStateException("calling " + name + " failed", t);
      }
    }

    /** Copies the packaged library to a temp file (deleted on exit); null when the jar has none. */
    private static Path extract() throws IOException {
      try (InputStream in = NativeKernels.class.getResourceAsStream(RESOURCE)) {
        if (in == null) {
          return null;
        }
        Path tmp = Files.createTempFile("libhflash-", ".so");
        tmp.toFile().deleteOnExit();
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        return tmp;
      }
    }
  }
}
