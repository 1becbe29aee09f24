package dev.approvald;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.approvald.approval.v1.Approval;
import io.grpc.Status;
import java.io.FileInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** TLS and a bearer token, against a replica started with both on. */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class SecureGateTest {
  private static final String TOKEN = "java-test-token-0123456789abcdef";

  @Test
  void aGateWithTlsAndABearerTokenActsAsItsPrincipal(@TempDir Path dir) throws Exception {
    Path cert = dir.resolve("server.pem");
    Path key = dir.resolve("server.key");
    selfSignedCertificate(dir, cert, key);
    Path auth = dir.resolve("auth.toml");
    Files.writeString(
        auth,
        "[[tokens]]\nprincipal = \"java-bot\"\nroles = [\"admin\"]\nsha256 = \""
            + HexFormat.of()
                .formatHex(
                    MessageDigest.getInstance("SHA-256")
                        .digest(TOKEN.getBytes(StandardCharsets.UTF_8)))
            + "\"\n");

    try (Live.Replica secure =
            new Live.Replica(
                addr -> ApprovalGate.builder(addr).tlsTrusting(cert).bearerToken(TOKEN).build(),
                "--tls-cert-file", cert.toString(),
                "--tls-key-file", key.toString(),
                "--auth-config", auth.toString());
        ApprovalGate gate =
            ApprovalGate.builder(secure.addr)
                .tlsTrusting(cert)
                .bearerToken(TOKEN)
                .agentId("java-secure")
                .build();
        ApprovalGate anonymous = ApprovalGate.builder(secure.addr).tlsTrusting(cert).build()) {
      Approval created = gate.createApproval(ApprovalRequest.builder(Live.uniqueType()).build());
      assertEquals("java-bot", created.getRequester());

      ApprovalException refused =
          assertThrows(ApprovalException.class, () -> anonymous.getApproval(created.getId()));
      assertEquals(Status.Code.UNAUTHENTICATED, refused.code());
    }
  }

  /**
   * A certificate for 127.0.0.1 made by the JDK's keytool, written as PEM files. RSA: the
   * server's TLS library wants the public key inside a PKCS#8 EC key, which Java leaves out.
   */
  private static void selfSignedCertificate(Path dir, Path cert, Path key) throws Exception {
    Path store = dir.resolve("server.p12");
    String keytool = Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
    Process p =
        new ProcessBuilder(
                keytool, "-genkeypair", "-alias", "server", "-keyalg", "RSA", "-keysize",
                "2048", "-dname", "CN=127.0.0.1", "-ext", "san=ip:127.0.0.1",
                "-validity", "2", "-storetype", "PKCS12", "-keystore", store.toString(),
                "-storepass", "changeit")
            .redirectErrorStream(true)
            .start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), output);
    KeyStore keys = KeyStore.getInstance("PKCS12");
    try (FileInputStream in = new FileInputStream(store.toFile())) {
      keys.load(in, "changeit".toCharArray());
    }
    Files.writeString(cert, pem("CERTIFICATE", keys.getCertificate("server").getEncoded()));
    Files.writeString(
        key, pem("PRIVATE KEY", keys.getKey("server", "changeit".toCharArray()).getEncoded()));
  }

  private static String pem(String type, byte[] der) {
    return "-----BEGIN " + type + "-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
        + "\n-----END " + type + "-----\n";
  }
}
