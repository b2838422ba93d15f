package hflash.cli;

import hflash.bench.ResourceException;
import hflash.bench.Resources;
import hflash.io.UsageException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.NoSuchFileException;
import java.util.Arrays;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/**
 * The {@code hflash} command: {@code demo}, {@code bench}, {@code eval} and {@code make-demo-trace}.
 *
 * <p>Exit codes: 0 success; 2 a problem with the arguments or an input file (one line on stderr,
 * no stack trace unless {@code --verbose}); 1 anything else, also one line (a bug, or the machine:
 * out of memory, or a {@link ResourceException}: a KV cache larger than the memory available, refused before it
 * is allocated, saying how many bytes it needs and how many there are). Commands turn the library's validation errors about user input into
 * {@link UsageException} where they happen, so an IllegalArgumentException escaping from deeper
 * inside (a bug) is not reported as a usage error.
 * {@link #run} is the testable entry point; only {@link #main} exits the JVM.
 */
@Command(
    name = "hflash",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "Long-context decode attention on the CPU over an off-heap KV cache.",
    subcommands = {
      DemoCommand.class,
      BenchCommand.class,
      EvalCommand.class,
      MakeDemoTraceCommand.class,
      GenCommand.class, ClaimsCommand.class,
      GenerateCommand.class,
      AscendCommand.class,
      ProbeCommand.class,
      MemberCommand.class,
      ClusterBenchCommand.class,
      JlamaBenchCommand.class,
      CommandLine.HelpCommand.class
    })
public final class Main implements Runnable {

  /** Exit code for a problem with the arguments or an input file. */
  public static final int EXIT_USAGE = 2;
  /** Exit code for everything else that went wrong. */
  public static final int EXIT_FAILURE = 1;

  @Option(
      names = "--verbose",
      scope = ScopeType.INHERIT,
      description = "Print stack traces with errors.")
  boolean verbose;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "missing command (demo, bench, eval, gen, claims, generate, ascend, probe, member, cluster-bench, jlama-bench, make-demo-trace, test via ./hflash test)");
  }

  public static void main(String[] args) {
    PrintWriter out = new PrintWriter(System.out, true);
    PrintWriter err = new PrintWriter(System.err, true);
    int code = run(args, out, err);
    out.flush();
    err.flush();
    System.exit(code);
  }

  /** Runs one command line and returns its exit code; output goes to {@code out}, errors to {@code err}. */
  public static int run(String[] args, PrintWriter out, PrintWriter err) {
    boolean verbose = Arrays.asList(args).contains("--verbose");
    CommandLine cmd = new CommandLine(new Main());
    cmd.setOut(out);
    cmd.setErr(err);
    cmd.setCaseInsensitiveEnumValuesAllowed(true);
    cmd.setParameterExceptionHandler(
        (ex, a) -> {
          String name = ex.getCommandLine().getCommandName();
          String prefix = name.equals("hflash") ? "hflash: " : "hflash " + name + ": ";
          err.println(prefix + oneLine(ex.getMessage()) + " (see 'hflash " + (name.equals("hflash") ? "" : name + " ") + "--help')");
          if (verbose) {
            ex.printStackTrace(err);
          }
          err.flush();
          return EXIT_USAGE;
        });
    cmd.setExecutionExceptionHandler(
        (ex, c, parsed) -> {
          int code = exitCode(ex);
          String name = c.getCommandName();
          String prefix = name.equals("hflash") ? "hflash: " : "hflash " + name + ": ";
          err.println(prefix + describe(ex));
          if (verbose) {
            ex.printStackTrace(err);
          }
          err.flush();
          return code;
        });
    int code = cmd.execute(args);
    out.flush();
    err.flush();
    return code;
  }

  /** Problems the user can fix (arguments, files) exit 2; the rest exit 1. */
  static int exitCode(Throwable ex) {
    if (ex instanceof UsageException || ex instanceof IOException || ex instanceof UncheckedIOException) {
      return EXIT_USAGE;
    }
    return EXIT_FAILURE;
  }

  static String describe(Throwable ex) {
    if (ex instanceof NoSuchFileException nsf) {
      return "no such file: " + nsf.getFile();
    }
    if (ex instanceof UncheckedIOException uio && uio.getCause() != null) {
      return describe(uio.getCause());
    }
    if (ex instanceof IOException io) {
      return "cannot read: " + oneLine(io.getMessage());
    }
    if (ex instanceof OutOfMemoryError oom) {
      return "out of memory (" + oneLine(oom.getMessage()) + "): try a smaller --context or a larger -Xmx / HFLASH_JAVA_OPTS";
    }
    if (ex instanceof UsageException || ex instanceof ResourceException) {
      return oneLine(ex.getMessage());
    }
    return "internal error: " + ex.getClass().getSimpleName() + ": " + oneLine(ex.getMessage())
        + " (--verbose prints the stack trace)";
  }

  static String oneLine(String message) {
    if (message == null) {
      return "(no message)";
    }
    return message.strip().replaceAll("\\s*[\\r\\n]+\\s*", "; ");
  }

  /** The version from the jar manifest when built, else "dev". */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Main.class.getPackage().getImplementationVersion();
      return new String[] {"hflash " + (v == null ? "dev" : v) + " (java " + Runtime.version() + ")"};
    }
  }
}
