# Vector addition, the course's first kernel, in awk: c[i] = a[i] + b[i].
BEGIN {
    for (i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i; c[i] = a[i] + b[i] }
    for (i = 0; i < n; i++) printf "c[%d] = %d + %d = %d\n", i, a[i], b[i], c[i]
    ok = 1
    for (i = 0; i < n; i++) if (c[i] != 3 * i) ok = 0
    print (ok ? "PASS" : "FAIL")
}
