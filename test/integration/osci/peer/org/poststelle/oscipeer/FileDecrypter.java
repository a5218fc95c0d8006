package org.poststelle.oscipeer;

import java.security.cert.X509Certificate;

import de.osci.osci12.common.Constants;
import de.osci.osci12.encryption.Crypto;
import de.osci.osci12.encryption.OSCICipherException;
import de.osci.osci12.extinterfaces.crypto.Decrypter;

/** FileDecrypter unwraps content and transport keys with a PKCS#12 cipher key. */
final class FileDecrypter extends Decrypter {
  private final KeyFile keyFile;

  FileDecrypter(KeyFile keyFile) {
    this.keyFile = keyFile;
  }

  @Override
  public String getVersion() {
    return "1";
  }

  @Override
  public String getVendor() {
    return "poststelle-oscipeer";
  }

  @Override
  public X509Certificate getCertificate() {
    return keyFile.cert;
  }

  @Override
  public byte[] decrypt(byte[] data) throws OSCICipherException {
    try {
      return Crypto.doRSADecryption(keyFile.key, data);
    } catch (Exception e) {
      throw new OSCICipherException("decryption_error");
    }
  }

  @Override
  public byte[] decrypt(byte[] data, String mgfAlgorithm, String digestAlgorithm)
      throws OSCICipherException {
    try {
      return Crypto.doRSADecryption(keyFile.key, data, Constants.ASYMMETRIC_CIPHER_ALGORITHM_RSA_OAEP,
          mgfAlgorithm, digestAlgorithm, null);
    } catch (Exception e) {
      throw new OSCICipherException("decryption_error");
    }
  }
}
