"""Zero-shot modes: a trained run applied to SFG and NSFG test images.

  inpaint.py        inpaint mode: complete masked test images
  reconstruct.py    reconstruct mode: encode with the probability-flow ODE and decode
  common.py         what both share: test images, rates of the outputs, pictures, records
"""
