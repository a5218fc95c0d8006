package org.poststelle.oscipeer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.Enumeration;

import de.osci.osci12.common.DialogHandler;

/** KeyFile is the one private key and its certificate of a PKCS#12 file. */
final class KeyFile {
  final Path path;
  final PrivateKey key;
  final X509Certificate cert;

  private KeyFile(Path path, PrivateKey key, X509Certificate cert) {
    this.path = path;
    this.key = key;
    this.cert = cert;
  }

  /**
   * load reads the first key entry; the sample files hold exactly one. The library's provider
   * (BouncyCastle) reads them: the JDK's refuses the ECDSA samples' explicit curve parameters.
   */
  static KeyFile load(Path path, String password) throws IOException, GeneralSecurityException {
    KeyStore ks = DialogHandler.getSecurityProvider() == null
        ? KeyStore.getInstance("PKCS12")
        : KeyStore.getInstance("PKCS12", DialogHandler.getSecurityProvider());
    try (InputStream in = Files.newInputStream(path)) {
      ks.load(in, password.toCharArray());
    }
    Enumeration<String> aliases = ks.aliases();
    while (aliases.hasMoreElements()) {
      String alias = aliases.nextElement();
      if (ks.isKeyEntry(alias)) {
        PrivateKey k = (PrivateKey) ks.getKey(alias, password.toCharArray());
        return new KeyFile(path, k, (X509Certificate) ks.getCertificate(alias));
      }
    }
    throw new GeneralSecurityException(path + ": no private key entry");
  }
}
