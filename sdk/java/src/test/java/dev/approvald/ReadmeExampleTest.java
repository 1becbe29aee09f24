package dev.approvald;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.ApprovalStatus;
import dev.approvald.approval.v1.ListApprovalsRequest;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

class ReadmeExampleTest {
  /** The README's example compiles and runs as written (but for the address). */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void theReadmeExampleRunsAndPrintsTheHumansDecision(@TempDir Path dir) throws Exception {
    String output =
        runWhileApproving(dir, block("example", "java"), "Deploy", Live.addrA(), "alice");
    assertEquals("approved: true by alice\n", output);
  }

  /** The README's votes example, under the README's policy, prints both voters. */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void theReadmeVotesExampleRunsUnderTheReadmePolicy(@TempDir Path dir) throws Exception {
    try (Live.Replica server =
        PoliciesTest.startWithPolicies(dir.resolve("approvald.toml"), block("policy", "toml"))) {
      String output =
          runWhileApproving(
              dir, block("example: votes", "java"), "TwoPersonDeploy", server.addr, "alice", "bob");
      assertEquals("approved: true by alice and bob (2 needed)\n", output);
    }
  }

  /** The README block after {@code <!-- marker -->}, fenced as {@code lang}. */
  private static String block(String marker, String lang) throws Exception {
    String readme = Files.readString(Path.of("README.md"));
    Matcher match =
        Pattern.compile("(?s)<!-- " + Pattern.quote(marker) + " -->\n```" + lang + "\n(.*?)```")
            .matcher(readme);
    assertEquals(true, match.find(), "README.md has no " + marker + " block");
    return match.group(1);
  }

  /**
   * Compiles and runs the example program (class {@code className}) against {@code addr} while
   * each of {@code voters} approves the deploy:production approval it waits for; its output.
   */
  private static String runWhileApproving(
      Path dir, String example, String className, String addr, String... voters) throws Exception {
    String program = example.replace("127.0.0.1:50051", addr);
    Path source = dir.resolve(className + ".java");
    Files.writeString(source, program);

    String classpath = System.getProperty("java.class.path");
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    assertNotNull(javac, "a JDK is needed to compile the example");
    ByteArrayOutputStream errors = new ByteArrayOutputStream();
    int compiled =
        javac.run(null, null, errors, "-cp", classpath, "-d", dir.toString(), source.toString());
    assertEquals(0, compiled, errors.toString(StandardCharsets.UTF_8));

    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process run =
        new ProcessBuilder(java, "-cp", dir + File.pathSeparator + classpath, className)
            .redirectErrorStream(true)
            .start();
    CompletableFuture<String> output =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return new String(run.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
              } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            });
    try (ApprovalGate human = Live.gate(addr, "java-readme-human")) {
      ListApprovalsRequest filter =
          ListApprovalsRequest.newBuilder()
              .addStatuses(ApprovalStatus.APPROVAL_STATUS_PENDING)
              .addApprovalTypes("deploy:production")
              .setAgentId("deployer")
              .build();
      Approval pending =
          Live.eventually(
              Duration.ofSeconds(60),
              () -> {
                List<Approval> found = new java.util.ArrayList<>();
                human.listApprovals(filter).forEach(found::add);
                return found.isEmpty() ? null : found.get(0);
              });
      for (String voter : voters) {
        human.respond(pending.getId(), true, voter, "ok");
      }
      assertEquals(true, run.waitFor(60, TimeUnit.SECONDS), "the example did not finish");
      String printed = output.get(10, TimeUnit.SECONDS);
      assertEquals(0, run.exitValue(), printed);
      return printed;
    } finally {
      run.destroyForcibly();
    }
  }
}
