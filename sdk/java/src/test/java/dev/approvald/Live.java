package dev.approvald;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The live service the tests run against: scripts/suites/43-sdk-java.sh starts Redis and two
 * approvald replicas on it and passes their addresses in the environment; tests that stop a
 * replica start an extra one of their own on the same Redis.
 */
final class Live {
  private Live() {}

  static String env(String name) {
    String value = System.getenv(name);
    if (value == null || value.isEmpty()) {
      throw new IllegalStateException(name + " is not set: run scripts/suites/43-sdk-java.sh");
    }
    return value;
  }

  static String addrA() {
    return env("APPROVALD_ADDR_A");
  }

  static String addrB() {
    return env("APPROVALD_ADDR_B");
  }

  static ApprovalGate gate(String addr, String agentId) {
    return ApprovalGate.builder(addr).agentId(agentId).build();
  }

  /** An approval type no other test uses. */
  static String uniqueType() {
    return "test.java." + UUID.randomUUID().toString().substring(0, 12);
  }

  static int freePort() {
    try (ServerSocket s = new ServerSocket()) {
      s.bind(new InetSocketAddress("127.0.0.1", 0));
      return s.getLocalPort();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** check's first non-null, non-false result, polled for at most {@code within}. */
  static <T> T eventually(Duration within, Supplier<T> check) {
    long ends = System.nanoTime() + within.toNanos();
    while (true) {
      T result = check.get();
      if (result != null && !Boolean.FALSE.equals(result)) {
        return result;
      }
      if (System.nanoTime() > ends) {
        return fail("not true within " + within);
      }
      sleep(Duration.ofMillis(50));
    }
  }

  static void sleep(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** One more approvald process on the suite's Redis; close() stops it as Kubernetes would. */
  static final class Replica implements AutoCloseable {
    final String addr;
    private final Process process;
    private final Path log;

    Replica(String... extraArgs) throws IOException {
      this(addr -> gate(addr, "probe"), extraArgs);
    }

    /** {@code probe}: a gate that reaches this replica (e.g. with TLS and a token). */
    Replica(Function<String, ApprovalGate> probe, String... extraArgs) throws IOException {
      this("127.0.0.1:" + freePort(), env("APPROVALD_REDIS_PREFIX"), probe, extraArgs);
    }

    /**
     * A replica listening on {@code addr} (e.g. the address of one stopped before: a restart) with
     * the store under {@code redisPrefix} on the suite's Redis.
     */
    static Replica on(String addr, String redisPrefix, String... extraArgs) throws IOException {
      return new Replica(addr, redisPrefix, a -> gate(a, "probe"), extraArgs);
    }

    private Replica(
        String addr, String redisPrefix, Function<String, ApprovalGate> probe, String... extraArgs)
        throws IOException {
      this.addr = addr;
      log = Files.createTempFile("approvald-java-test", ".log");
      List<String> command =
          new ArrayList<>(
              List.of(
                  env("APPROVALD_BIN"),
                  "--listen", addr,
                  "--metrics-listen", "127.0.0.1:" + freePort(),
                  "--redis-url", env("APPROVALD_REDIS_URL"),
                  "--redis-prefix", redisPrefix,
                  // The same default as the suite's other replicas: a
                  // request without a timeout re-attaches as the same
                  // request on any replica of one deployment.
                  "--default-timeout", env("APPROVALD_DEFAULT_TIMEOUT_SECONDS") + "s",
                  "--shutdown-grace", "2s"));
      command.addAll(List.of(extraArgs));
      process =
          new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
      // Not left running when a test fails or the test JVM ends early.
      Runtime.getRuntime().addShutdownHook(new Thread(process::destroyForcibly));
      try {
        waitServing(probe);
      } catch (IOException | RuntimeException | Error e) {
        close();
        throw e;
      }
    }

    /** Until the replica answers API calls (a NOT_FOUND for an unknown id), 30 s at most. */
    private void waitServing(Function<String, ApprovalGate> probing) throws IOException {
      long ends = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      try (ApprovalGate probe = probing.apply(addr)) {
        while (System.nanoTime() < ends) {
          if (!process.isAlive()) {
            fail("approvald exited: " + Files.readString(log));
          }
          try {
            probe.getApproval("01890a5d-ac96-774b-bcce-b302099a8057");
          } catch (ApprovalException.NotFoundException serving) {
            return;
          } catch (ApprovalException notYet) {
            sleep(Duration.ofMillis(100));
          }
        }
      }
      fail("approvald at " + addr + " did not serve within 30 s: " + Files.readString(log));
    }

    /** SIGTERM, as Kubernetes does, and waits for the process to end. */
    void stop() {
      process.destroy();
      try {
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    @Override
    public void close() throws IOException {
      stop();
      Files.deleteIfExists(log);
    }
  }
}
