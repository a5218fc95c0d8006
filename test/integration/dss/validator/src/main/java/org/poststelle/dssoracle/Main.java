package org.poststelle.dssoracle;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Command-line entry of the DSS oracle.
 *
 * <pre>
 * single:  dss-oracle [--detached FILE|sha256:B64]... [--trust FILE]... [--at RFC3339|now]
 *                     [--dump-anchors DIR] SIGNATURE
 * batch:   dss-oracle --jobs JOBS.tsv --corpus DIR --base DIR --out DIR [--dump-anchors DIR]
 * check:   dss-oracle --check [--refresh] --jobs JOBS.tsv --corpus DIR --base DIR --out GOLDEN_DIR
 * </pre>
 *
 * With --evidence-record, the SIGNATURE (or every job's signature) is a detached RFC 4998
 * evidence record and the detached files are its data objects.
 *
 * A batch validates many documents in one JVM because DSS's start-up dominates a
 * single run. The jobs file is tab-separated: name, signature, detached, trust,
 * at. Signature and detached paths are relative to --corpus, trust paths to
 * --base unless they start with "corpus:"; lists are comma-separated, "-" means
 * none. A trust file ending in .xml is a trusted list; others hold PEM or DER
 * certificates. A detached entry "sha256:BASE64" is a digest-only document. Lines starting with # are
 * comments. Each job writes OUT/name.json.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        DoctypeNoise.install();
        // slf4j-simple reads these once, at its first use: keep DSS quiet and off stdout.
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
            System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "error");
        }
        try {
            System.exit(run(args, System.out));
        } catch (UsageException e) {
            System.err.println("dss-oracle: " + e.getMessage());
            System.exit(2);
        } catch (IOException e) {
            System.err.println("dss-oracle: " + e.getMessage());
            System.exit(1);
        }
    }

    static int run(String[] args, PrintStream out) throws IOException, UsageException {
        Job single = new Job();
        single.name = "stdout";
        single.at = "now";
        Path jobs = null;
        Path corpus = null;
        Path base = Paths.get(".");
        Path outDir = null;
        Path anchors = null;
        boolean check = false;
        boolean refresh = false;
        boolean evidenceRecord = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--detached" -> single.detached.add(arg(args, ++i, a));
                case "--trust" -> single.trust.add(arg(args, ++i, a));
                case "--at" -> single.at = arg(args, ++i, a);
                case "--jobs" -> jobs = Paths.get(arg(args, ++i, a));
                case "--corpus" -> corpus = Paths.get(arg(args, ++i, a));
                case "--base" -> base = Paths.get(arg(args, ++i, a));
                case "--out" -> outDir = Paths.get(arg(args, ++i, a));
                case "--dump-anchors" -> anchors = Paths.get(arg(args, ++i, a));
                case "--check" -> check = true;
                case "--refresh" -> refresh = true;
                case "--evidence-record" -> evidenceRecord = true;
                case "-h", "--help" -> throw new UsageException(usage());
                default -> {
                    if (a.startsWith("--")) {
                        throw new UsageException("unknown option " + a + "\n" + usage());
                    }
                    if (single.signature != null) {
                        throw new UsageException("more than one signature file; use --jobs");
                    }
                    single.signature = a;
                }
            }
        }
        Oracle oracle = new Oracle(anchors);
        single.evidenceRecord = evidenceRecord;
        if (jobs == null) {
            if (single.signature == null) {
                throw new UsageException(usage());
            }
            Map<String, Object> res = oracle.validate(single, Paths.get("."), Paths.get("."), null);
            out.print(Json.write(res));
            return res.containsKey("error") ? 1 : 0;
        }
        if (corpus == null || outDir == null) {
            throw new UsageException("--jobs needs --corpus and --out");
        }
        if (refresh && !check) {
            throw new UsageException("--refresh needs --check");
        }
        if (check) {
            return check(oracle, readJobs(jobs, evidenceRecord), corpus, base, outDir, refresh);
        }
        Files.createDirectories(outDir);
        int failed = 0;
        List<Job> list = readJobs(jobs, evidenceRecord);
        for (Job j : list) {
            long t0 = System.nanoTime();
            Map<String, Object> res = oracle.validate(j, corpus, base, null);
            Path target = outDir.resolve(j.name + ".json");
            Files.createDirectories(target.getParent());
            Files.writeString(target, Json.write(res), StandardCharsets.UTF_8);
            if (res.containsKey("error")) {
                failed++;
            }
            System.err.printf("%-70s %5d ms%s%n", j.name, (System.nanoTime() - t0) / 1_000_000,
                    res.containsKey("error") ? "  (DSS refused: see file)" : "");
        }
        System.err.printf("%d jobs, %d refused by DSS%n", list.size(), failed);
        return 0;
    }

    private static final Pattern VALIDATION_TIME = Pattern.compile("\"validationTime\": \"([^\"]+)\"");

    private static final Pattern VERDICT = Pattern.compile(
            "\"(indication|subIndication|signatureQualification|qualification|error)\": (null|\"(?:[^\"\\\\]|\\\\.)*\")");

    /**
     * Re-runs every job at the validation time recorded in its golden file and
     * compares the verdicts (every indication, sub-indication and qualification,
     * in order, and whether DSS refused the document) with the golden file. The
     * rest of the output is compared too but only reported: DSS 6.4 is not fully
     * deterministic in details between runs (e.g. for cades/dss-916 the best
     * signature time and revocation messages vary), while verdicts are stable.
     * validate.sh pins the JVM's identity hash so that the details repeat too.
     * With refresh, a golden file whose verdicts still match but whose details
     * differ is rewritten with the new output, keeping its recorded validation
     * time; a verdict change is never written.
     */
    private static int check(Oracle oracle, List<Job> list, Path corpus, Path base, Path golden, boolean refresh)
            throws IOException, UsageException {
        int bad = 0;
        int details = 0;
        for (Job j : list) {
            Path target = golden.resolve(j.name + ".json");
            if (!Files.exists(target)) {
                System.out.println("MISSING " + target);
                bad++;
                continue;
            }
            String want = Files.readString(target, StandardCharsets.UTF_8);
            Matcher m = VALIDATION_TIME.matcher(want);
            if (!m.find()) {
                System.out.println("NO validationTime in " + target);
                bad++;
                continue;
            }
            String got = Json.write(oracle.validate(j, corpus, base, parseAt(m.group(1))));
            if (got.equals(want)) {
                continue;
            }
            List<String> wv = verdicts(want);
            List<String> gv = verdicts(got);
            if (!wv.equals(gv)) {
                System.out.println("DIFFERS " + target + ": golden " + wv + " / now " + gv);
                bad++;
            } else {
                details++;
                System.err.println("note: same verdicts, other details differ: " + target + ": " + firstDifference(want, got));
                if (refresh) {
                    Files.writeString(target, got, StandardCharsets.UTF_8);
                    System.err.println("refreshed " + target);
                }
            }
        }
        System.err.printf("%d jobs: %d verdicts differ, %d with differing details only%n", list.size(), bad, details);
        System.out.printf("dss: %d passed, %d failed%n", list.size() - bad, bad);
        return bad == 0 ? 0 : 1;
    }

    private static List<String> verdicts(String json) {
        List<String> l = new ArrayList<>();
        Matcher m = VERDICT.matcher(json);
        while (m.find()) {
            l.add(m.group(1) + "=" + m.group(2));
        }
        return l;
    }

    private static String firstDifference(String want, String got) {
        String[] w = want.split("\n", -1);
        String[] g = got.split("\n", -1);
        for (int i = 0; i < Math.max(w.length, g.length); i++) {
            String a = i < w.length ? w[i] : "<end>";
            String b = i < g.length ? g[i] : "<end>";
            if (!a.equals(b)) {
                return "line " + (i + 1) + ": golden " + a.trim() + " / now " + b.trim();
            }
        }
        return "?";
    }

    private static String arg(String[] args, int i, String opt) throws UsageException {
        if (i >= args.length) {
            throw new UsageException(opt + " needs a value");
        }
        return args[i];
    }

    static List<Job> readJobs(Path file, boolean evidenceRecord) throws IOException, UsageException {
        List<Job> jobs = new ArrayList<>();
        int n = 0;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            n++;
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\t", -1);
            if (f.length != 5) {
                throw new UsageException(file + ":" + n + ": want 5 tab-separated fields, got " + f.length);
            }
            Job j = new Job();
            j.name = f[0];
            j.signature = f[1];
            j.detached = list(f[2]);
            j.trust = list(f[3]);
            j.at = f[4];
            j.evidenceRecord = evidenceRecord;
            jobs.add(j);
        }
        return jobs;
    }

    private static List<String> list(String field) {
        List<String> l = new ArrayList<>();
        if (field.isEmpty() || field.equals("-")) {
            return l;
        }
        for (String s : field.split(",")) {
            if (!s.isBlank()) {
                l.add(s.trim());
            }
        }
        return l;
    }

    static Date parseAt(String at) throws UsageException {
        if (at == null || at.equals("now")) {
            return new Date();
        }
        try {
            return Date.from(Instant.parse(at));
        } catch (RuntimeException e) {
            throw new UsageException("bad validation time " + at + " (want RFC 3339 UTC, e.g. 2012-01-02T03:04:05Z)");
        }
    }

    private static String usage() {
        return """
                usage:
                  dss-oracle [--detached FILE|sha256:BASE64]... [--trust CERTFILE]... [--at RFC3339|now]
                             [--dump-anchors DIR] SIGNATURE
                  dss-oracle --evidence-record [--detached DATAFILE]... [--trust CERTFILE]... [--at RFC3339|now] RECORD.ers
                  dss-oracle --jobs JOBS.tsv --corpus DIR --base DIR --out DIR [--dump-anchors DIR]
                  dss-oracle --check [--refresh] --jobs JOBS.tsv --corpus DIR --base DIR --out GOLDEN_DIR
                  (--evidence-record with --jobs: every job is an evidence record)""";
    }

    /** One validation request. */
    static final class Job {
        String name;
        String signature;
        List<String> detached = new ArrayList<>();
        List<String> trust = new ArrayList<>();
        String at;
        /** The signature file is a detached RFC 4998 evidence record over the detached files. */
        boolean evidenceRecord;

        Map<String, Object> describe() {
            Map<String, Object> m = new LinkedHashMap<>();
            if (evidenceRecord) {
                m.put("mode", "evidence-record");
            }
            m.put("signature", signature);
            m.put("detached", detached);
            m.put("trust", trust);
            m.put("at", at);
            return m;
        }
    }

    /** Bad command line or jobs file. */
    static final class UsageException extends Exception {
        UsageException(String msg) {
            super(msg);
        }
    }
}
