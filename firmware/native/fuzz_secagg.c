/* tinyfed — fuzz target for the SecAgg+ stage bodies (wire.def TFD_BODY) and the
 * device client that decodes them (firmware/src/secagg/protocol.c).
 *
 * Built with libFuzzer (clang -fsanitize=fuzzer,address,undefined) or, without
 * clang, with the small mutation driver at the end of this file (gcc
 * -fsanitize=address,undefined -DTFD_FUZZ_DRIVER); tests/test_secagg_fuzz.py
 * runs it briefly, bench/secagg_fuzz.py for >= 1 M inputs.
 *
 * Setup (once): four clients (ids 1..4 of a fleet made by fleet_maker.c,
 * complete graph, t = 3) run an honest round with a deterministic random
 * source; client 1's state is snapshotted before each stage, with the valid
 * request body of that stage (signed keys, survivor set, signatures).
 *
 * One input: byte 0 = the stage to start from (0 fresh, 1 ADVERTISED, 2 SHARED,
 * 3 MASKED, 4 CHECKED) | 0x80: make the random source fail after byte 1 calls;
 * then a sequence of steps "u8 op | u16 len | len bytes" (op 0 ADVERTISE_KEYS,
 * 1 SHARE_KEYS, 2 MASKED_INPUT, 3 SURVIVORS, 4 UNMASK: the bytes are the
 * request body; 5: masked read, bytes = u32 offset | u32 count; 6: decode the
 * bytes as body number byte 0 of the table, then encode it back).
 *
 * Invariants checked after every step (a violation aborts = a finding):
 *   - a request that does not decode (TFD_ERR_MSG_LENGTH) or is out of round /
 *     stage (TFD_ERR_PROTO_STATE), and any refused ADVERTISE_KEYS, leaves the
 *     client byte for byte as it was;
 *   - any other refusal leaves it IDLE with every round secret zero;
 *   - an accepted request's reply decodes through the table as that stage's
 *     reply body, is no longer than the buffer, and names the round;
 *   - a body that decodes encodes back to the same bytes.
 * ASan / UBSan catch any out-of-bounds access or undefined behaviour.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfd/fleet_maker.h"
#include "tfd/secagg_client.h"
#include "tfd/wire.h"

#define NST 5u /* stages with a snapshot */
#define NCL 4u
#define K (NCL - 1u)
#define T 3u
#define NP 64u
#define ROUND 7u

static uint64_t g_rng;
static long g_fail_after = -1; /* calls until the random source fails; -1: never */

static tfd_status_t fuzz_random(uint8_t *out, size_t len)
{
    if (g_fail_after == 0) return TFD_ERR_INTERNAL;
    if (g_fail_after > 0) --g_fail_after;
    for (size_t i = 0; i < len; ++i) { /* splitmix64: deterministic, not secret (a fuzz harness) */
        uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        out[i] = (uint8_t)(z ^ (z >> 31));
    }
    return TFD_OK;
}

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_secagg: invariant violated: %s\n", what);
        abort();
    }
}

static const tfd_sa_encoding_t k_enc = {.clip = 1.0f, .frac_bits = 16, .weight_max = 64};
static float g_x[NP];       /* the update buffer (encoded in place by MASKED_INPUT) */
static float g_x0[NP];      /* the update */
static float g_x3[NP];      /* the buffer after the setup's MASKED_INPUT (client 1's encoded words) */
static tfd_identity_t g_ident[NCL];
static uint8_t g_rec[NCL][TFD_ID_RECORD_BYTES(NCL)];
static tfd_sa_client_t g_snap[NST]; /* client 1 before: ADVERTISE (fresh), SHARE_KEYS, MASKED_INPUT, SURVIVORS, UNMASK */
static uint8_t g_body[NST][TFD_WIRE_SA_BODY_MAX]; /* the valid request of that stage */
static size_t g_body_len[NST];
static uint64_t g_rng_snap[NST];
static int g_ready;

static const uint8_t k_reply_msg[NST] = {TFD_MSG_ADVERTISE_KEYS, TFD_MSG_SHARE_KEYS, TFD_MSG_MASKED_INPUT,
                                         TFD_MSG_SURVIVORS, TFD_MSG_UNMASK};

static int zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; ++i) acc |= b[i];
    return acc == 0;
}

/* every secret of a round is gone */
static int secrets_zero(const tfd_sa_client_t *c)
{
    if (!zero(c->share_sk, 32) || !zero(c->mask_sk, 32) || !zero(c->seed, 32) || !zero(c->own_b_share, 32) ||
        !zero(c->self_key, 32) || !zero(c->pair_key, sizeof c->pair_key) || c->vec != NULL ||
        !zero(&c->summed, sizeof c->summed))
        return 0;
    for (unsigned i = 0; i < TFD_SA_CLIENT_MAX_NEIGHBOURS; ++i) {
        if (!zero(c->nb[i].share_key, 32) || !zero(c->nb[i].sealed, sizeof c->nb[i].sealed)) return 0;
    }
    return 1;
}

static int wiped(const tfd_sa_client_t *c)
{
    return secrets_zero(c) && c->stage == TFD_SA_CLIENT_IDLE;
}

#define OK_OR_DIE(expr, what) must((expr) == TFD_OK, what)

static void setup(void)
{
    static tfd_sa_client_t cl[NCL];
    static uint8_t reply[NCL][TFD_WIRE_SA_BODY_MAX];
    static size_t reply_len[NCL];
    static uint8_t req[TFD_WIRE_SA_BODY_MAX];
    uint8_t pk[NCL][2][32], adv_sig[NCL][64];
    g_rng = 1;
    for (unsigned i = 0; i < NP; ++i) g_x0[i] = (float)((int)(i % 13u) - 6) / 512.0f;
    memcpy(g_x, g_x0, sizeof g_x);
    static const uint32_t ids[NCL] = {1, 2, 3, 4};
    static const uint8_t fleet_seed[32] = {7};
    for (unsigned u = 0; u < NCL; ++u) {
        size_t rl = 0;
        OK_OR_DIE(tfd_fleet_record(g_rec[u], sizeof g_rec[u], &rl, ids, NCL, u, fleet_seed, 2), "fleet record");
        OK_OR_DIE(tfd_identity_init(&g_ident[u], g_rec[u], rl), "identity");
        OK_OR_DIE(tfd_sa_client_init(&cl[u], &g_ident[u], &k_enc, fuzz_random), "init");
    }
    /* ADVERTISE_KEYS */
    for (unsigned u = 0; u < NCL; ++u) {
        tfd_body_SA_ADVERTISE_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = ROUND;
        b.self_id = u + 1u;
        b.threshold = T;
        b.neighbours_count = K;
        size_t len = 0;
        OK_OR_DIE(TFD_BODY_ENCODE(SA_ADVERTISE_REQ, &b, req, sizeof req, &len), "adv body");
        unsigned e = 0;
        for (unsigned v = 0; v < NCL; ++v) {
            if (v == u) continue;
            const tfd_rec_SA_ID_t id = {.id = v + 1u};
            OK_OR_DIE(tfd_body_SA_ADVERTISE_REQ_put_neighbours(req, sizeof req, &b, e++, &id), "adv id");
        }
        if (u == 0) {
            g_snap[0] = cl[0];
            g_rng_snap[0] = g_rng;
            memcpy(g_body[0], req, len);
            g_body_len[0] = len;
        }
        size_t olen = 0;
        OK_OR_DIE(tfd_sa_client_advertise(&cl[u], req, len, reply[u], sizeof reply[u], &olen), "advertise");
        tfd_body_SA_ADVERTISE_REPLY_t r;
        OK_OR_DIE(TFD_BODY_DECODE(SA_ADVERTISE_REPLY, reply[u], olen, &r), "adv reply");
        memcpy(pk[u][0], r.share_pk, 32);
        memcpy(pk[u][1], r.mask_pk, 32);
        memcpy(adv_sig[u], r.sig, 64);
    }
    /* SHARE_KEYS */
    for (unsigned u = 0; u < NCL; ++u) {
        tfd_body_SA_SHARE_KEYS_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = ROUND;
        b.keys_count = K;
        size_t len = 0;
        OK_OR_DIE(TFD_BODY_ENCODE(SA_SHARE_KEYS_REQ, &b, req, sizeof req, &len), "sk body");
        unsigned e = 0;
        for (unsigned v = 0; v < NCL; ++v) {
            if (v == u) continue;
            tfd_rec_SA_PEER_KEYS_t k;
            memset(&k, 0, sizeof k);
            k.id = v + 1u;
            memcpy(k.share_pk, pk[v][0], 32);
            memcpy(k.mask_pk, pk[v][1], 32);
            k.n_nb = K; /* complete graph: everyone else */
            unsigned q = 0;
            for (unsigned w = 0; w < NCL; ++w) {
                if (w != v) k.nb[q++] = w + 1u;
            }
            memcpy(k.sig, adv_sig[v], 64);
            OK_OR_DIE(tfd_body_SA_SHARE_KEYS_REQ_put_keys(req, sizeof req, &b, e++, &k), "sk keys");
        }
        if (u == 0) {
            g_snap[1] = cl[0];
            g_rng_snap[1] = g_rng;
            memcpy(g_body[1], req, len);
            g_body_len[1] = len;
        }
        OK_OR_DIE(tfd_sa_client_share_keys(&cl[u], req, len, reply[u], sizeof reply[u], &reply_len[u]), "share");
    }
    /* MASKED_INPUT of every client: the shares addressed to it */
    static float xs[NCL][NP];
    for (unsigned to = 0; to < NCL; ++to) {
        tfd_body_SA_MASKED_INPUT_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = ROUND;
        b.shares_count = K;
        size_t len = 0;
        OK_OR_DIE(TFD_BODY_ENCODE(SA_MASKED_INPUT_REQ, &b, req, sizeof req, &len), "mi body");
        unsigned e = 0;
        for (unsigned v = 0; v < NCL; ++v) {
            if (v == to) continue;
            tfd_body_SA_SHARE_KEYS_REPLY_t r;
            OK_OR_DIE(TFD_BODY_DECODE(SA_SHARE_KEYS_REPLY, reply[v], reply_len[v], &r), "sk reply");
            for (unsigned i = 0; i < r.shares_count; ++i) {
                tfd_rec_SA_SEALED_OUT_t x;
                OK_OR_DIE(tfd_body_SA_SHARE_KEYS_REPLY_shares(&r, i, &x), "sealed");
                if (x.receiver != to + 1u) continue;
                tfd_rec_SA_SEALED_IN_t in;
                in.sender = v + 1u;
                in.receiver = to + 1u;
                memcpy(in.nonce, x.nonce, sizeof in.nonce);
                memcpy(in.sealed, x.sealed, sizeof in.sealed);
                OK_OR_DIE(tfd_body_SA_MASKED_INPUT_REQ_put_shares(req, sizeof req, &b, e++, &in), "mi share");
            }
        }
        must(e == K, "one share from each neighbour");
        const tfd_sa_summed_t summed = {.weight = 9};
        uint32_t nw = 0;
        if (to == 0) {
            g_snap[2] = cl[0];
            g_rng_snap[2] = g_rng;
            memcpy(g_body[2], req, len);
            g_body_len[2] = len;
            OK_OR_DIE(tfd_sa_client_masked_input(&cl[0], req, len, g_x, NP, &summed, &nw), "masked input");
            memcpy(g_x3, g_x, sizeof g_x);
        } else {
            memcpy(xs[to], g_x0, sizeof xs[to]);
            OK_OR_DIE(tfd_sa_client_masked_input(&cl[to], req, len, xs[to], NP, &summed, &nw), "masked input");
        }
    }
    /* SURVIVORS: everyone survived */
    static uint8_t surv_sig[NCL][64];
    {
        tfd_body_SA_SURVIVORS_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = ROUND;
        b.bitmap_count = 1;
        static const uint8_t all = 0x0F;
        b.bitmap = &all;
        size_t len = 0;
        OK_OR_DIE(TFD_BODY_ENCODE(SA_SURVIVORS_REQ, &b, req, sizeof req, &len), "surv body");
        g_snap[3] = cl[0];
        g_rng_snap[3] = g_rng;
        memcpy(g_body[3], req, len);
        g_body_len[3] = len;
        for (unsigned u = 0; u < NCL; ++u) {
            size_t olen = 0;
            OK_OR_DIE(tfd_sa_client_survivors(&cl[u], req, len, reply[u], sizeof reply[u], &olen), "survivors");
            tfd_body_SA_SURVIVORS_REPLY_t r;
            OK_OR_DIE(TFD_BODY_DECODE(SA_SURVIVORS_REPLY, reply[u], olen, &r), "surv reply");
            memcpy(surv_sig[u], r.sig, 64);
        }
    }
    /* UNMASK of client 1: the others' signatures of the survivor set */
    {
        tfd_body_SA_UNMASK_REQ_t b;
        memset(&b, 0, sizeof b);
        b.round = ROUND;
        b.sigs_count = K;
        size_t len = 0;
        OK_OR_DIE(TFD_BODY_ENCODE(SA_UNMASK_REQ, &b, req, sizeof req, &len), "un body");
        for (unsigned v = 1; v < NCL; ++v) {
            tfd_rec_SA_SIGNATURE_t g;
            g.signer = v + 1u;
            memcpy(g.sig, surv_sig[v], 64);
            OK_OR_DIE(tfd_body_SA_UNMASK_REQ_put_sigs(req, sizeof req, &b, v - 1u, &g), "un sig");
        }
        g_snap[4] = cl[0];
        g_rng_snap[4] = g_rng;
        memcpy(g_body[4], req, len);
        g_body_len[4] = len;
    }
    for (unsigned u = 1; u < NCL; ++u) tfd_sa_client_wipe(&cl[u]);
    cl[0].vec = NULL; /* its buffer (g_x) is restored per input from g_x3 */
    tfd_sa_client_wipe(&cl[0]);
    g_ready = 1;
}

/* one stage request against c; checks the invariants */
static void run_stage(tfd_sa_client_t *c, unsigned op, const uint8_t *body, size_t len)
{
    static tfd_sa_client_t before;
    static uint8_t out[TFD_WIRE_SA_BODY_MAX];
    before = *c;
    size_t olen = 0;
    tfd_status_t st = TFD_ERR_INTERNAL;
    const tfd_sa_summed_t summed = {.weight = 9};
    uint32_t nw = 0;
    switch (op) {
    case 0: st = tfd_sa_client_advertise(c, body, len, out, sizeof out, &olen); break;
    case 1: st = tfd_sa_client_share_keys(c, body, len, out, sizeof out, &olen); break;
    case 2: st = tfd_sa_client_masked_input(c, body, len, g_x, NP, &summed, &nw); break;
    case 3: st = tfd_sa_client_survivors(c, body, len, out, sizeof out, &olen); break;
    default: st = tfd_sa_client_unmask(c, body, len, out, sizeof out, &olen); break;
    }
    const int unchanged = memcmp(&before, c, sizeof before) == 0;
    /* a refused ADVERTISE_KEYS changes nothing -- unless the random source failed after the
     * new round had begun (then the old round is over anyway and it is wiped below) */
    if (st == TFD_ERR_MSG_LENGTH || st == TFD_ERR_PROTO_STATE || (op == 0 && st != TFD_OK && st != TFD_ERR_INTERNAL)) {
        must(unchanged, "a request that does not decode / is out of round or stage / a refused ADVERTISE "
                        "changed the client");
        return;
    }
    if (st != TFD_OK) {
        must(wiped(c), "a refused request left a secret or a stage behind");
        if (before.vec != NULL) must(zero(g_x, sizeof g_x), "a refusal left the encoded update in the buffer");
        must((op == 0 || c->round == before.round) && c->id == before.id, "a refusal changed the round or the id");
        return;
    }
    if (op == 2) {
        must(c->stage == TFD_SA_CLIENT_MASKED && nw == TFD_SA_WORDS(NP) && c->n_words == nw &&
                 c->vec == (uint8_t *)(void *)g_x,
             "masked input state");
        return;
    }
    must(olen <= sizeof out, "reply longer than its buffer");
    const tfd_wire_struct_t *d = tfd_wire_find_body(k_reply_msg[op], TFD_DIR_D2H);
    union {
        tfd_body_SA_ADVERTISE_REPLY_t a;
        tfd_body_SA_SHARE_KEYS_REPLY_t s;
        tfd_body_SA_SURVIVORS_REPLY_t v;
        tfd_body_SA_UNMASK_REPLY_t u;
    } r;
    must(d != NULL && d->native_size <= sizeof r, "reply descriptor");
    must(tfd_wire_body_decode(d, out, olen, &r, d->native_size) == TFD_OK, "reply does not decode through the table");
    uint32_t rr;
    memcpy(&rr, &r, sizeof rr);
    must(rr == before.round || op == 0, "reply names another round");
    if (op == 3) must(c->stage == TFD_SA_CLIENT_CHECKED, "SURVIVORS stage");
    if (op == 4) {
        must(secrets_zero(c) && c->stage == TFD_SA_CLIENT_DONE, "UNMASK left secrets");
        must(zero(g_x, sizeof g_x), "UNMASK left the encoded update in the buffer");
    }
}

static void run_read(tfd_sa_client_t *c, const uint8_t *b, size_t len)
{
    uint32_t off = 0, cnt = 0;
    if (len >= 4) memcpy(&off, b, 4);
    if (len >= 8) memcpy(&cnt, b + 4, 4);
    static uint32_t words[256];
    if (cnt > 256) cnt %= 257u;
    const tfd_status_t st = tfd_sa_client_masked_read(c, off, words, cnt);
    if (st == TFD_OK)
        must((c->stage == TFD_SA_CLIENT_MASKED || c->stage == TFD_SA_CLIENT_CHECKED) && off + cnt <= c->n_words,
             "read outside the vector");
}

static void run_raw(const uint8_t *b, size_t len)
{
    static union {
        tfd_body_SA_ADVERTISE_REQ_t a;
        tfd_body_SA_ADVERTISE_REPLY_t ar;
        tfd_body_SA_SHARE_KEYS_REQ_t s;
        tfd_body_SA_SHARE_KEYS_REPLY_t sr;
        tfd_body_SA_MASKED_INPUT_REQ_t m;
        tfd_body_SA_MASKED_INPUT_REPLY_t mr;
        tfd_body_SA_SURVIVORS_REQ_t sv;
        tfd_body_SA_SURVIVORS_REPLY_t svr;
        tfd_body_SA_UNMASK_REQ_t u;
        tfd_body_SA_UNMASK_REPLY_t ur;
    } nat;
    static uint8_t copy[1u << 16], out[1u << 16];
    if (len == 0) return;
    unsigned which = b[0], nbodies = 0;
    const tfd_wire_struct_t *d = NULL;
    for (size_t i = 0; i < tfd_wire_struct_count; ++i) {
        if (!tfd_wire_structs[i]->is_body) continue;
        if (nbodies++ == which % 10u) d = tfd_wire_structs[i];
    }
    if (d == NULL) return;
    /* a copy exactly len - 1 bytes long, so ASan sees any read past its end */
    const size_t n = len - 1;
    memcpy(copy, b + 1, n);
    uint8_t *heap = malloc(n ? n : 1);
    must(heap != NULL, "malloc");
    memcpy(heap, copy, n);
    must(d->native_size <= sizeof nat, "native size");
    if (tfd_wire_body_decode(d, heap, n, &nat, d->native_size) == TFD_OK) {
        size_t olen = 0;
        must(tfd_wire_body_encode(d, &nat, d->native_size, out, sizeof out, &olen) == TFD_OK && olen == n &&
                 memcmp(out, copy, n) == 0,
             "a decoded body does not encode back to the same bytes");
        for (unsigned g = 0; g < d->n_repeats; ++g) { /* every record readable, none past the end */
            const tfd_wire_repeat_t *rep = &d->repeats[g];
            const uint8_t *grp;
            uint32_t cnt;
            memcpy(&grp, (const uint8_t *)&nat + rep->native_off, sizeof grp);
            memcpy(&cnt, (const uint8_t *)&nat + rep->native_count_off, sizeof cnt);
            uint8_t rec[256];
            must(rep->record->native_size <= sizeof rec, "record size");
            if (cnt) must(tfd_wire_record_get(rep->record, grp, cnt, cnt - 1u, rec, rep->record->native_size) == TFD_OK,
                          "last record");
            must(tfd_wire_record_get(rep->record, grp, cnt, cnt, rec, rep->record->native_size) == TFD_ERR_ARG,
                 "a record past the group");
        }
    }
    free(heap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ready) setup();
    if (size < 2) return 0;
    static tfd_sa_client_t c;
    const unsigned start = (data[0] & 7u) % NST;
    c = g_snap[start];
    memcpy(g_x, start >= 3 ? g_x3 : g_x0, sizeof g_x); /* the buffer as the snapshot left it */
    g_rng = g_rng_snap[start] ^ ((uint64_t)size << 32);
    g_fail_after = (data[0] & 0x80u) ? (long)data[1] : -1;
    size_t o = 2;
    for (unsigned steps = 0; o + 3 <= size && steps < 16; ++steps) {
        const unsigned op = data[o] % 7u;
        size_t len = (size_t)data[o + 1] | (size_t)data[o + 2] << 8;
        o += 3;
        if (len > size - o) len = size - o;
        /* the body in its own heap block of exactly len bytes: ASan sees any over-read */
        uint8_t *body = malloc(len ? len : 1);
        must(body != NULL, "malloc");
        memcpy(body, data + o, len);
        if (op < NST) run_stage(&c, op, body, len);
        else if (op == NST) run_read(&c, body, len);
        else run_raw(body, len);
        free(body);
        o += len;
    }
    g_fail_after = -1;
    tfd_sa_client_wipe(&c);
    return 0;
}

/* Seeds: for each snapshot, its valid request (and the whole rest of the round
 * from the first); written to directory `dir` (one file each). */
static int write_seeds(const char *dir)
{
    if (!g_ready) setup();
    static uint8_t buf[NST * (TFD_WIRE_SA_BODY_MAX + 3) + 16];
    for (unsigned s = 0; s <= NST; ++s) { /* one per stage, then the whole round from ADVERTISED */
        size_t n = 0;
        buf[n++] = (uint8_t)(s < NST ? s : 1);
        buf[n++] = 0;
        for (unsigned st = s < NST ? s : 1; st < NST; ++st) {
            buf[n++] = (uint8_t)st;
            buf[n++] = (uint8_t)g_body_len[st];
            buf[n++] = (uint8_t)(g_body_len[st] >> 8);
            memcpy(buf + n, g_body[st], g_body_len[st]);
            n += g_body_len[st];
            if (s < NST) break;
        }
        char path[512];
        snprintf(path, sizeof path, "%s/seed%u", dir, s);
        FILE *f = fopen(path, "wb");
        if (!f) return 1;
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    for (unsigned b = 0; b < 10; ++b) { /* raw decoding of each body, from the valid requests */
        size_t n = 0;
        buf[n++] = 0;
        buf[n++] = 0;
        const size_t len = g_body_len[b % NST] + 1u;
        buf[n++] = 6;
        buf[n++] = (uint8_t)len;
        buf[n++] = (uint8_t)(len >> 8);
        buf[n++] = (uint8_t)b;
        memcpy(buf + n, g_body[b % NST], g_body_len[b % NST]);
        n += g_body_len[b % NST];
        char path[512];
        snprintf(path, sizeof path, "%s/raw%u", dir, b);
        FILE *f = fopen(path, "wb");
        if (!f) return 1;
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    return 0;
}

#ifndef TFD_FUZZ_DRIVER
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TFD_FUZZ_SEEDS");
    if (dir != NULL && *dir) return write_seeds(dir);
    return 0;
}
#else
/* Without libFuzzer: structured random mutation of the seeds, N inputs.
 *   fuzz_secagg RUNS SEED    (prints "inputs N" at the end; a violation aborts)
 *   fuzz_secagg seeds DIR    (writes the seed inputs) */
static uint64_t g_mut;
static uint32_t mrand(void)
{
    g_mut ^= g_mut << 13;
    g_mut ^= g_mut >> 7;
    g_mut ^= g_mut << 17;
    return (uint32_t)(g_mut >> 16);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "seeds") == 0) return write_seeds(argv[2]);
    const unsigned long runs = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000ul;
    g_mut = (argc > 2 ? strtoull(argv[2], NULL, 10) : 1ull) * 0x2545F4914F6CDD1Dull | 1u;
    setup();
    static uint8_t in[NST * (TFD_WIRE_SA_BODY_MAX + 3) + 64];
    unsigned long done = 0;
    for (; done < runs; ++done) {
        const unsigned s = mrand() % NST;
        size_t n = 0;
        in[n++] = (uint8_t)(s | ((mrand() % 16u == 0) ? 0x80u : 0u));
        in[n++] = (uint8_t)(mrand() % 8u);
        const unsigned steps = 1u + mrand() % 3u;
        for (unsigned k = 0; k < steps; ++k) {
            const unsigned st = (s + k) % NST;
            size_t len = g_body_len[st];
            const unsigned op = mrand() % 8u < 6u ? st : mrand() % 7u;
            in[n++] = (uint8_t)op;
            const size_t at = n;
            n += 2;
            if (op == 6) in[n++] = (uint8_t)(mrand() % 10u);
            memcpy(in + n, g_body[st], len);
            /* mutations: flip bits, set bytes, change a count, truncate or extend */
            const unsigned nm = mrand() % 4u;
            for (unsigned m = 0; m < nm && len; ++m) {
                switch (mrand() % 5u) {
                case 0: in[n + mrand() % len] ^= (uint8_t)(1u << (mrand() % 8u)); break;
                case 1: in[n + mrand() % len] = (uint8_t)mrand(); break;
                case 2: in[n + 4 + mrand() % 8u % (len > 12 ? 8u : 1u)] = (uint8_t)(mrand() % 40u); break;
                case 3: len = mrand() % (len + 1); break;
                default: {
                    const size_t extra = mrand() % 64u;
                    if (len + extra <= TFD_WIRE_SA_BODY_MAX) {
                        for (size_t i = 0; i < extra; ++i) in[n + len + i] = (uint8_t)mrand();
                        len += extra;
                    }
                }
                }
            }
            if (op == 6) len += 1;
            in[at] = (uint8_t)len;
            in[at + 1] = (uint8_t)(len >> 8);
            n += op == 6 ? len - 1 : len;
        }
        LLVMFuzzerTestOneInput(in, n);
    }
    printf("inputs %lu\n", done);
    return 0;
}
#endif
