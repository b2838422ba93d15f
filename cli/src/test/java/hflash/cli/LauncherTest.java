package hflash.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The JDK search of the {@code ./hflash} launcher, against fake JDKs (shell scripts that print a
 * version) in a temporary folder given by {@code HFLASH_JVM_DIRS}, with a PATH that holds only bash.
 * {@code HFLASH_FIND_JAVA_ONLY=1} stops the launcher after the search, so no build runs.
 */
class LauncherTest {

  static final Path LAUNCHER = Path.of("..", "hflash").toAbsolutePath().normalize();
  static final Path BASH = Path.of("/bin/bash");

  @TempDir Path tmp;
  Path bin;

  @BeforeEach
  void fakePath() throws IOException {
    assumeTrue(Files.isExecutable(BASH) && Files.isRegularFile(LAUNCHER), "needs /bin/bash and the launcher");
    bin = Files.createDirectories(tmp.resolve("bin"));
    Files.createSymbolicLink(bin.resolve("bash"), BASH);
  }

  /** A JDK home whose bin/java prints {@code version} the way {@code java -version} does. */
  Path fakeJdk(String name, String version, boolean releaseFile) throws IOException {
    Path home = tmp.resolve("jvm").resolve(name);
    Path java = Files.createDirectories(home.resolve("bin")).resolve("java");
    Files.writeString(java, "#!/bin/bash\necho 'openjdk version \"" + version + "\" 2025-10-21' >&2\n");
    Files.setPosixFilePermissions(java, PosixFilePermissions.fromString("rwxr-xr-x"));
    if (releaseFile) {
      Files.writeString(home.resolve("release"), "IMPLEMENTOR=\"test\"\nJAVA_VERSION=\"" + version + "\"\n");
    }
    return home;
  }

  record Run(int code, String out, String err) {}

  Run launch(Map<String, String> env) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(BASH.toString(), LAUNCHER.toString(), "demo"));
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.environment().clear();
    pb.environment().put("PATH", bin.toString());
    pb.environment().put("HOME", tmp.resolve("home").toString());
    pb.environment().put("HFLASH_FIND_JAVA_ONLY", "1");
    pb.environment().putAll(env);
    Process p = pb.start();
    assertTrue(p.waitFor(30, TimeUnit.SECONDS), "launcher timed out");
    return new Run(
        p.exitValue(),
        new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip(),
        new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
  }

  @Test
  void javaHome17FallsThroughToAJdk25Folder() throws Exception {
    Path old = fakeJdk("jdk-17", "17.0.15", true);
    Path jdk25 = fakeJdk("jdk-25", "25.0.1", true);
    fakeJdk("jdk-8", "1.8.0_392", false);
    Run r = launch(Map.of("JAVA_HOME", old.toString(), "HFLASH_JVM_DIRS", tmp.resolve("jvm") + "/*"));
    assertEquals(0, r.code(), r::toString);
    assertEquals(jdk25.toString(), r.out(), r::toString);
  }

  @Test
  void javaHome25WinsOverFolders() throws Exception {
    Path home = fakeJdk("mine", "25", false);
    fakeJdk("jdk-26", "26.0.1", true);
    Run r = launch(Map.of("JAVA_HOME", home.toString(), "HFLASH_JVM_DIRS", tmp.resolve("jvm") + "/jdk-*"));
    assertEquals(0, r.code(), r::toString);
    assertEquals(home.toString(), r.out(), r::toString);
  }

  @Test
  void newestFolderWinsAndVersionsWithoutReleaseFileAreAsked() throws Exception {
    fakeJdk("a-25", "25.0.2", true);
    Path newest = fakeJdk("b-27", "27-ea", false);
    Run r = launch(Map.of("HFLASH_JVM_DIRS", tmp.resolve("jvm") + "/*"));
    assertEquals(0, r.code(), r::toString);
    assertEquals(newest.toString(), r.out(), r::toString);
  }

  @Test
  void javaOnPathIsTheLastResort() throws Exception {
    Path home = fakeJdk("onpath", "25.0.1", false);
    Files.createSymbolicLink(bin.resolve("java"), home.resolve("bin/java"));
    Path readlink = Path.of("/usr/bin/readlink");
    assumeTrue(Files.isExecutable(readlink), "needs readlink to follow /usr/bin/java-style links");
    Files.createSymbolicLink(bin.resolve("readlink"), readlink);
    Run r = launch(Map.of("HFLASH_JVM_DIRS", ""));
    assertEquals(0, r.code(), r::toString);
    // JAVA_HOME for Maven: the link on PATH is followed to the JDK it points into
    assertEquals(home.toRealPath().toString(), r.out(), r::toString);
  }

  @Test
  void noJdkPrintsWhatToInstallAndFails() throws Exception {
    Path old = fakeJdk("jdk-17", "17.0.15", true);
    Run r = launch(Map.of("JAVA_HOME", old.toString(), "HFLASH_JVM_DIRS", tmp.resolve("jvm") + "/*"));
    assertEquals(1, r.code(), r::toString);
    assertEquals("", r.out(), r::toString);
    assertTrue(r.err().contains("no JDK 25 or newer found"), r::toString);
    assertTrue(r.err().contains("install a JDK 25"), r::toString);
    assertTrue(r.err().contains("openjdk-25-jdk"), r::toString);
    assertTrue(r.err().contains("JAVA_HOME"), r::toString);
    assertTrue(r.err().contains("(java 17)"), r::toString);
  }
}
