package org.poststelle.dssoracle;

import eu.europa.esig.dss.diagnostic.CertificateWrapper;
import eu.europa.esig.dss.diagnostic.DiagnosticData;
import eu.europa.esig.dss.diagnostic.EvidenceRecordWrapper;
import eu.europa.esig.dss.diagnostic.SignatureWrapper;
import eu.europa.esig.dss.diagnostic.TimestampWrapper;
import eu.europa.esig.dss.diagnostic.jaxb.XmlDigestMatcher;
import eu.europa.esig.dss.enumerations.DigestAlgorithm;
import eu.europa.esig.dss.enumerations.TokenExtractionStrategy;
import eu.europa.esig.dss.evidencerecord.common.validation.DefaultEvidenceRecordValidator;
import eu.europa.esig.dss.jaxb.object.Message;
import eu.europa.esig.dss.model.DSSDocument;
import eu.europa.esig.dss.model.DigestDocument;
import eu.europa.esig.dss.model.FileDocument;
import eu.europa.esig.dss.model.x509.CertificateToken;
import eu.europa.esig.dss.simplereport.SimpleReport;
import eu.europa.esig.dss.simplereport.jaxb.XmlMessage;
import eu.europa.esig.dss.simplereport.jaxb.XmlTimestamp;
import eu.europa.esig.dss.model.DSSException;
import eu.europa.esig.dss.model.InMemoryDocument;
import eu.europa.esig.dss.spi.DSSUtils;
import eu.europa.esig.dss.spi.client.http.DSSFileLoader;
import eu.europa.esig.dss.spi.tsl.TrustedListsCertificateSource;
import eu.europa.esig.dss.spi.x509.CertificateSource;
import eu.europa.esig.dss.spi.x509.CommonCertificateSource;
import eu.europa.esig.dss.tsl.job.TLValidationJob;
import eu.europa.esig.dss.tsl.source.TLSource;
import eu.europa.esig.dss.spi.validation.CommonCertificateVerifier;
import eu.europa.esig.dss.spi.x509.CommonTrustedCertificateSource;
import eu.europa.esig.dss.validation.SignedDocumentValidator;
import eu.europa.esig.dss.validation.policy.ValidationPolicyLoader;
import eu.europa.esig.dss.validation.reports.Reports;
import eu.europa.esig.dss.validation.timestamp.DetachedTimestampValidator;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Runs DSS on one document, fully offline, and turns its reports into the
 * oracle's JSON shape (see ../README.md for the field list).
 */
final class Oracle {
    static final String DSS_VERSION = "6.4";

    private static final Pattern PEM = Pattern.compile(
            "-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\\s]+)-----END CERTIFICATE-----");

    private static final Pattern X509_ELEMENT = Pattern.compile(
            "<(?:[A-Za-z0-9_]+:)?X509Certificate>([A-Za-z0-9+/=\\s]+)</(?:[A-Za-z0-9_]+:)?X509Certificate>");

    private final Path anchorDir;
    private final Map<String, TrustedListsCertificateSource> tlCache = new HashMap<>();

    Oracle(Path anchorDir) {
        this.anchorDir = anchorDir;
    }

    /** Validates one job; at, when not null, overrides the job's time (the check mode). */
    Map<String, Object> validate(Main.Job job, Path corpus, Path base, Date override) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("tool", "DSS " + DSS_VERSION);
        out.put("input", job.describe());
        try {
            Date at = override != null ? override : Main.parseAt(job.at);
            out.put("validationTime", time(at));
            Reports reports = run(job, corpus, base, at);
            render(out, reports);
            if (anchorDir != null) {
                dumpAnchors(reports.getDiagnosticData(), anchorDir.resolve(job.name));
            }
        } catch (Exception | StackOverflowError e) {
            // DSS refusing a document (malformed, unsupported) is a result worth recording.
            out.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        return out;
    }

    private Reports run(Main.Job job, Path corpus, Path base, Date at) throws IOException {
        CommonCertificateVerifier cv = new CommonCertificateVerifier();
        // Offline: no AIA, OCSP or CRL fetching; only what the document carries.
        cv.setAIASource(null);
        cv.setOcspSource(null);
        cv.setCrlSource(null);
        CommonTrustedCertificateSource trusted = new CommonTrustedCertificateSource();
        List<CertificateSource> sources = new ArrayList<>();
        sources.add(trusted);
        for (String t : job.trust) {
            Path p = t.startsWith("corpus:") ? corpus.resolve(t.substring("corpus:".length())) : base.resolve(t);
            if (t.endsWith(".xml")) {
                sources.add(trustedList(p));
                continue;
            }
            for (CertificateToken c : loadCertificates(p)) {
                trusted.addCertificate(c);
            }
        }
        cv.setTrustedCertSources(sources.toArray(new CertificateSource[0]));

        DSSDocument doc = new FileDocument(corpus.resolve(job.signature).toFile());
        if (job.evidenceRecord) {
            return runEvidenceRecord(job, corpus, at, cv, doc);
        }
        SignedDocumentValidator v = SignedDocumentValidator.fromDocument(doc);
        v.setCertificateVerifier(cv);
        v.setValidationTime(at);
        v.setTokenExtractionStrategy(TokenExtractionStrategy.EXTRACT_CERTIFICATES_ONLY);
        List<DSSDocument> detached = new ArrayList<>();
        for (String d : job.detached) {
            if (d.startsWith("sha256:")) {
                detached.add(new DigestDocument(DigestAlgorithm.SHA256, d.substring("sha256:".length())));
            } else {
                detached.add(new FileDocument(corpus.resolve(d).toFile()));
            }
        }
        if (v instanceof DetachedTimestampValidator tv && detached.size() == 1) {
            tv.setTimestampedData(detached.get(0));
        } else if (!detached.isEmpty()) {
            v.setDetachedContents(detached);
        }
        // A fresh default policy per job: DSS's policy objects cache results that
        // depend on the validation time, so a shared one leaks between jobs.
        return v.validateDocument(ValidationPolicyLoader.fromDefaultValidationPolicy().create());
    }

    /**
     * Validates a detached RFC 4998 evidence record against its data objects (DSS's
     * dss-evidence-record-asn1). Detached files are the archived data objects.
     */
    private static Reports runEvidenceRecord(Main.Job job, Path corpus, Date at, CommonCertificateVerifier cv, DSSDocument doc) {
        DefaultEvidenceRecordValidator v = DefaultEvidenceRecordValidator.fromDocument(doc);
        v.setCertificateVerifier(cv);
        v.setValidationTime(at);
        v.setTokenExtractionStrategy(TokenExtractionStrategy.EXTRACT_CERTIFICATES_ONLY);
        List<DSSDocument> detached = new ArrayList<>();
        for (String d : job.detached) {
            if (d.startsWith("sha256:")) {
                detached.add(new DigestDocument(DigestAlgorithm.SHA256, d.substring("sha256:".length())));
            } else {
                detached.add(new FileDocument(corpus.resolve(d).toFile()));
            }
        }
        v.setDetachedContents(detached);
        return v.validateDocument(ValidationPolicyLoader.fromDefaultValidationPolicy().create());
    }

    /**
     * Loads an ETSI TS 119 612 trusted list from a file, offline. The list's signature
     * is checked against the last X509Certificate in the file (its own KeyInfo): the
     * oracle trusts the list it is handed, as our verifier does with --trust TL.xml.
     * Versions 4 to 6 are accepted so that the 2015 German list (v4) can be used.
     */
    private TrustedListsCertificateSource trustedList(Path file) throws IOException {
        String key = file.toAbsolutePath().normalize().toString();
        TrustedListsCertificateSource cached = tlCache.get(key);
        if (cached != null) {
            return cached;
        }
        String xml = Files.readString(file, StandardCharsets.UTF_8);
        Matcher m = X509_ELEMENT.matcher(xml);
        String last = null;
        while (m.find()) {
            last = m.group(1);
        }
        CommonCertificateSource signer = new CommonCertificateSource();
        if (last != null) {
            signer.addCertificate(DSSUtils.loadCertificate(Base64.getMimeDecoder().decode(last.trim())));
        }
        TLSource src = new TLSource();
        src.setUrl(file.toUri().toString());
        src.setCertificateSource(signer);
        src.setTLVersions(List.of(4, 5, 6));
        TLValidationJob job = new TLValidationJob();
        job.setTrustedListSources(src);
        job.setOfflineDataLoader((DSSFileLoader) url -> {
            try {
                return new InMemoryDocument(Files.readAllBytes(Path.of(java.net.URI.create(url))));
            } catch (IOException e) {
                throw new DSSException("read trusted list " + url, e);
            }
        });
        TrustedListsCertificateSource tls = new TrustedListsCertificateSource();
        job.setTrustedListCertificateSource(tls);
        job.offlineRefresh();
        if (tls.getNumberOfTrustedEntityKeys() == 0) {
            throw new IOException("trusted list " + file + " yielded no trusted certificates");
        }
        tlCache.put(key, tls);
        return tls;
    }

    static List<CertificateToken> loadCertificates(Path file) throws IOException {
        byte[] raw = Files.readAllBytes(file);
        String text = new String(raw, StandardCharsets.ISO_8859_1);
        List<CertificateToken> certs = new ArrayList<>();
        Matcher m = PEM.matcher(text);
        while (m.find()) {
            byte[] der = Base64.getMimeDecoder().decode(m.group(1));
            certs.add(DSSUtils.loadCertificate(der));
        }
        if (certs.isEmpty()) {
            certs.add(DSSUtils.loadCertificate(raw));
        }
        return certs;
    }

    private static void render(Map<String, Object> out, Reports reports) {
        SimpleReport sr = reports.getSimpleReport();
        DiagnosticData dd = reports.getDiagnosticData();
        List<Object> sigs = new ArrayList<>();
        for (String id : sr.getSignatureIdList()) {
            sigs.add(signature(sr, dd, id));
        }
        out.put("signatures", sigs);
        List<Object> tsts = new ArrayList<>();
        for (String id : sr.getTimestampIdList()) {
            tsts.add(detachedTimestamp(sr, dd, id));
        }
        out.put("timestamps", tsts);
        // Only present when DSS found evidence records, so that the other modes' output stays as it was.
        List<Object> records = new ArrayList<>();
        for (String id : sr.getEvidenceRecordIdList()) {
            records.add(evidenceRecord(sr, dd, id));
        }
        if (!records.isEmpty()) {
            out.put("evidenceRecords", records);
        }
    }

    private static Map<String, Object> evidenceRecord(SimpleReport sr, DiagnosticData dd, String id) {
        Map<String, Object> m = new LinkedHashMap<>();
        EvidenceRecordWrapper er = dd.getEvidenceRecordById(id);
        m.put("id", id);
        m.put("type", er == null ? null : name(er.getEvidenceRecordType()));
        m.put("indication", name(sr.getIndication(id)));
        m.put("subIndication", name(sr.getSubIndication(id)));
        m.put("poeTime", time(sr.getEvidenceRecordPOE(id)));
        if (er != null) {
            m.put("structuralValid", er.isStructuralValidationValid());
            m.put("digestMatchers", digestMatchers(er.getDigestMatchers()));
        }
        List<Object> ts = new ArrayList<>();
        List<XmlTimestamp> xts = sr.getEvidenceRecordTimestamps(id);
        if (xts != null) {
            for (XmlTimestamp t : xts) {
                TimestampWrapper tw = dd.getTimestampById(t.getId());
                Map<String, Object> tm = timestamp(t, tw);
                if (tw != null) {
                    tm.put("chain", chain(tw.getCertificateChain()));
                    tm.put("digestMatchers", digestMatchers(tw.getDigestMatchers()));
                }
                ts.add(tm);
            }
        }
        m.put("timestamps", ts);
        m.put("errors", messages(sr.getAdESValidationErrors(id)));
        m.put("warnings", messages(sr.getAdESValidationWarnings(id)));
        m.put("infos", messages(sr.getAdESValidationInfo(id)));
        return m;
    }

    private static List<Object> digestMatchers(List<XmlDigestMatcher> list) {
        List<Object> l = new ArrayList<>();
        for (XmlDigestMatcher dm : list) {
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("type", name(dm.getType()));
            d.put("name", dm.getDocumentName());
            d.put("found", dm.isDataFound());
            d.put("intact", dm.isDataIntact());
            l.add(d);
        }
        return l;
    }

    private static Map<String, Object> signature(SimpleReport sr, DiagnosticData dd, String id) {
        Map<String, Object> m = new LinkedHashMap<>();
        SignatureWrapper sw = dd.getSignatureById(id);
        m.put("id", id);
        m.put("counterSignature", sw != null && sw.isCounterSignature());
        m.put("parentId", sw != null && sw.getParent() != null ? sw.getParent().getId() : null);
        m.put("signatureFormat", sr.getSignatureFormat(id) == null ? null : sr.getSignatureFormat(id).toString());
        m.put("indication", name(sr.getIndication(id)));
        m.put("subIndication", name(sr.getSubIndication(id)));
        m.put("signatureQualification", sr.getSignatureQualification(id) == null ? null
                : sr.getSignatureQualification(id).getReadable());
        m.put("signatureQualificationName", name(sr.getSignatureQualification(id)));
        m.put("signingTime", time(sr.getSigningTime(id)));
        m.put("bestSignatureTime", time(sr.getBestSignatureTime(id)));
        m.put("signedBy", sr.getSignedBy(id));
        if (sw != null) {
            m.put("signer", certificate(sw.getSigningCertificate()));
            m.put("chain", chain(sw.getCertificateChain()));
            m.put("technical", technical(sw));
        }
        List<Object> ts = new ArrayList<>();
        List<XmlTimestamp> xts = sr.getSignatureTimestamps(id);
        if (xts != null) {
            for (XmlTimestamp t : xts) {
                ts.add(timestamp(t, dd.getTimestampById(t.getId())));
            }
        }
        m.put("timestamps", ts);
        m.put("errors", messages(sr.getAdESValidationErrors(id)));
        m.put("warnings", messages(sr.getAdESValidationWarnings(id)));
        m.put("infos", messages(sr.getAdESValidationInfo(id)));
        m.put("qualificationErrors", messages(sr.getQualificationErrors(id)));
        m.put("qualificationWarnings", messages(sr.getQualificationWarnings(id)));
        return m;
    }

    private static Map<String, Object> technical(SignatureWrapper sw) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("signatureIntact", sw.isSignatureIntact());
        m.put("signatureValid", sw.isSignatureValid());
        m.put("bLevelTechnicallyValid", sw.isBLevelTechnicallyValid());
        m.put("signingCertificateIdentified", sw.isSigningCertificateIdentified());
        m.put("signatureAlgorithm", name(sw.getSignatureAlgorithm()));
        List<Object> dms = new ArrayList<>();
        for (XmlDigestMatcher dm : sw.getDigestMatchers()) {
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("type", name(dm.getType()));
            d.put("found", dm.isDataFound());
            d.put("intact", dm.isDataIntact());
            dms.add(d);
        }
        m.put("digestMatchers", dms);
        return m;
    }

    private static Map<String, Object> timestamp(XmlTimestamp t, TimestampWrapper tw) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", t.getId());
        m.put("type", tw == null ? null : name(tw.getType()));
        m.put("productionTime", time(t.getProductionTime()));
        m.put("producedBy", t.getProducedBy());
        m.put("indication", name(t.getIndication()));
        m.put("subIndication", name(t.getSubIndication()));
        m.put("qualification", t.getTimestampLevel() == null || t.getTimestampLevel().getValue() == null ? null
                : t.getTimestampLevel().getValue().getReadable());
        if (tw != null) {
            m.put("sha256", tokenSha256(tw));
            m.put("tsa", certificate(tw.getSigningCertificate()));
            m.put("messageImprintFound", tw.isMessageImprintDataFound());
            m.put("messageImprintIntact", tw.isMessageImprintDataIntact());
            m.put("signatureIntact", tw.isSignatureIntact());
            m.put("signatureValid", tw.isSignatureValid());
        }
        if (t.getAdESValidationDetails() != null) {
            m.put("errors", xmlMessages(t.getAdESValidationDetails().getError()));
            m.put("warnings", xmlMessages(t.getAdESValidationDetails().getWarning()));
        }
        return m;
    }

    private static Map<String, Object> detachedTimestamp(SimpleReport sr, DiagnosticData dd, String id) {
        Map<String, Object> m = new LinkedHashMap<>();
        TimestampWrapper tw = dd.getTimestampById(id);
        m.put("id", id);
        m.put("type", tw == null ? null : name(tw.getType()));
        m.put("productionTime", time(sr.getProductionTime(id)));
        m.put("producedBy", sr.getProducedBy(id));
        m.put("indication", name(sr.getIndication(id)));
        m.put("subIndication", name(sr.getSubIndication(id)));
        m.put("qualification", sr.getTimestampQualification(id) == null ? null
                : sr.getTimestampQualification(id).getReadable());
        if (tw != null) {
            m.put("tsa", certificate(tw.getSigningCertificate()));
            m.put("chain", chain(tw.getCertificateChain()));
            m.put("messageImprintFound", tw.isMessageImprintDataFound());
            m.put("messageImprintIntact", tw.isMessageImprintDataIntact());
            m.put("signatureIntact", tw.isSignatureIntact());
            m.put("signatureValid", tw.isSignatureValid());
        }
        m.put("errors", messages(sr.getAdESValidationErrors(id)));
        m.put("warnings", messages(sr.getAdESValidationWarnings(id)));
        m.put("infos", messages(sr.getAdESValidationInfo(id)));
        return m;
    }

    private static Map<String, Object> certificate(CertificateWrapper c) {
        if (c == null) {
            return null;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("subject", c.getCertificateDN());
        m.put("issuer", c.getCertificateIssuerDN());
        m.put("serial", c.getSerialNumber());
        m.put("sha256", sha256(c));
        m.put("notBefore", time(c.getNotBefore()));
        m.put("notAfter", time(c.getNotAfter()));
        return m;
    }

    private static List<Object> chain(List<CertificateWrapper> chain) {
        List<Object> l = new ArrayList<>();
        for (CertificateWrapper c : chain) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("subject", c.getCertificateDN());
            m.put("sha256", sha256(c));
            m.put("trusted", c.isTrusted());
            l.add(m);
        }
        return l;
    }

    /**
     * The SHA-256 of the timestamp token (DSS hashes its DER encoding), so that a comparison can pair
     * timestamps by token rather than by time: DSS's timestamp ids also hash the token's position.
     */
    private static String tokenSha256(TimestampWrapper tw) {
        byte[] der = tw.getBinaries();
        if (der != null) {
            return hex(DSSUtils.digest(DigestAlgorithm.SHA256, der));
        }
        var dv = tw.getDigestAlgoAndValue();
        if (dv != null && dv.getDigestMethod() == DigestAlgorithm.SHA256) {
            return hex(dv.getDigestValue());
        }
        return null;
    }

    private static String sha256(CertificateWrapper c) {
        byte[] der = c.getBinaries();
        if (der != null) {
            return hex(DSSUtils.digest(DigestAlgorithm.SHA256, der));
        }
        // DSS's default token ids are "C-" followed by the SHA-256 of the DER.
        String id = c.getId();
        return id != null && id.startsWith("C-") ? id.substring(2).toLowerCase(Locale.ROOT) : null;
    }

    /** Writes the top CA certificate of every signature's and timestamp's chain to dir as PEM. */
    private static void dumpAnchors(DiagnosticData dd, Path dir) throws IOException {
        List<List<CertificateWrapper>> chains = new ArrayList<>();
        for (SignatureWrapper s : dd.getSignatures()) {
            chains.add(s.getCertificateChain());
        }
        for (TimestampWrapper t : dd.getTimestampList()) {
            chains.add(t.getCertificateChain());
        }
        for (List<CertificateWrapper> c : chains) {
            // Only CA certificates: trusting an end-entity certificate directly would
            // hide the path-building part of the comparison.
            if (c.size() < 2) {
                continue;
            }
            CertificateWrapper top = c.get(c.size() - 1);
            byte[] der = top.getBinaries();
            if (der == null) {
                continue;
            }
            String pem = "# " + top.getCertificateDN() + "\n-----BEGIN CERTIFICATE-----\n"
                    + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
                    + "\n-----END CERTIFICATE-----\n";
            Files.createDirectories(dir);
            Files.writeString(dir.resolve(sha256(top).substring(0, 16) + ".pem"), pem, StandardCharsets.UTF_8);
        }
    }

    private static List<Object> messages(List<Message> msgs) {
        List<Object> l = new ArrayList<>();
        if (msgs == null) {
            return l;
        }
        for (Message msg : msgs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("key", msg.getKey());
            m.put("text", msg.getValue());
            l.add(m);
        }
        return l;
    }

    private static List<Object> xmlMessages(List<XmlMessage> msgs) {
        List<Object> l = new ArrayList<>();
        if (msgs == null) {
            return l;
        }
        for (XmlMessage msg : msgs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("key", msg.getKey());
            m.put("text", msg.getValue());
            l.add(m);
        }
        return l;
    }

    private static String name(Enum<?> e) {
        return e == null ? null : e.name();
    }

    private static String name(Object o) {
        return o == null ? null : o.toString();
    }

    static String time(Date d) {
        return d == null ? null : DateTimeFormatter.ISO_INSTANT.format(d.toInstant());
    }

    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) {
            sb.append(String.format("%02x", x));
        }
        return sb.toString();
    }
}
