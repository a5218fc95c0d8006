package org.poststelle.oscipeer;

import java.security.Signature;
import java.security.SignatureException;
import java.security.cert.X509Certificate;

import de.osci.osci12.common.Constants;
import de.osci.osci12.common.DialogHandler;
import de.osci.osci12.extinterfaces.crypto.Signer;

/**
 * FileSigner signs with a PKCS#12 key and the algorithm chosen on the command line, so a run can
 * force RSA-PSS where the library would default to PKCS#1 v1.5.
 */
final class FileSigner extends Signer {
  private final KeyFile keyFile;
  private final String algorithm;

  FileSigner(KeyFile keyFile, String algorithm) {
    this.keyFile = keyFile;
    this.algorithm = algorithm;
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
  public String getAlgorithm() {
    return algorithm;
  }

  @Override
  public byte[] sign(byte[] data, String alg) throws SignatureException {
    try {
      String jca = (String) Constants.JCA_JCE_MAP.get(alg);
      if (jca == null) throw new SignatureException("no JCA name for " + alg);
      // The library maps ECDSA to BouncyCastle's plain (r||s) encoding, so ask BC for it.
      Signature s = DialogHandler.getSecurityProvider() == null
          ? Signature.getInstance(jca)
          : Signature.getInstance(jca, DialogHandler.getSecurityProvider());
      s.initSign(keyFile.key);
      s.update(data);
      return s.sign();
    } catch (SignatureException e) {
      throw e;
    } catch (Exception e) {
      throw new SignatureException("signing with " + keyFile.path + " (" + alg + "): " + e, e);
    }
  }
}
