    const __m256 zero = _mm256_setzero_ps();
    for (int64_t i = 0; i < rows; ++i) {
        const float *xi = x + i * cols;
        float *oi = out + i * cols;
        for (int64_t j = 0; j + 8 <= cols; j += 8) {
            const __m256 v = _mm256_add_ps(_mm256_loadu_ps(xi + j), _mm256_loadu_ps(bias + j));
            _mm256_storeu_ps(oi + j, _mm256_max_ps(v, zero));
        }
    }
